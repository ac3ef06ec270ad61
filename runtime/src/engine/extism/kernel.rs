//! Every host access to the extism kernel's memory, bounded by that memory's true size.
//!
//! extism 1.30 keeps its allocator's bookkeeping inside the kernel's linear memory: each
//! block's length in a header before it, and the call's output range and error block in a
//! root at address 1. A pack can rewrite the headers and the output length through
//! `store_u64`, and the kernel itself turns `alloc(-7)` into a block longer than memory.
//! extism's host side trusts those lengths: it reads a call's output and error message, and
//! writes the next call's input, with no bounds check, so one forged length made the host
//! read past the mapping and die (the case `fuzz/regressions/load-1892e0ca6c46ffae.bin`
//! keeps). So:
//! - packhost's own host functions reach kernel memory only through [`read_block`],
//!   [`new_block`] and [`block`], which check each range against the memory's size as its
//!   owner publishes it ([`MemoryMeter::size_at`]);
//! - `output_offset` and `output_length` are shadowed ([`seal_functions`]). extism calls them
//!   first when a call ends, before it reads anything, and nothing of the pack runs after, so
//!   they seal the call: an output range or error block outside memory, or an allocator that
//!   claims more memory than there is, is withdrawn, and the call fails with `trap`, as on the
//!   native engine. A failed call's instance is replaced, so the next call's input is written
//!   into a fresh kernel.

use std::sync::{Arc, PoisonError};

use extism::convert::MemoryHandle;
use extism::{CurrentPlugin, Function, UserData, Val, ValType};

use super::memory::MemoryMeter;
use super::LinkGate;
use crate::error::{Error, ErrorKind};
use crate::module::EXTISM_ENV;

/// Where extism 1.30's kernel keeps its `MemoryRoot` (a `repr(C)` struct of a flag and
/// seven `u64`s, at address 1), and the fields read here. A layout that moved would break
/// every call's output, which the conformance suite would show at once.
const ROOT: usize = 1;
const ROOT_INITIALIZED: usize = ROOT;
const ROOT_HEAP_LENGTH: usize = ROOT + 16;
const ROOT_ERROR: usize = ROOT + 24;
const ROOT_OUTPUT_OFFSET: usize = ROOT + 48;
const ROOT_OUTPUT_LENGTH: usize = ROOT + 56;
/// The root's size: the heap the kernel manages starts right after it.
const ROOT_SIZE: u64 = 64;

/// The whole of the kernel's memory as one slice, as long as the memory really is.
fn kernel_bytes<'p>(plugin: &'p mut CurrentPlugin, meter: &MemoryMeter) -> Option<&'p mut [u8]> {
    let base = plugin
        .memory_bytes(MemoryHandle::null())
        .ok()?
        .as_ptr()
        .cast_mut();
    let size = meter.size_at(base)?;
    // SAFETY: the first `size` bytes from `base` are the memory's accessible part, as the
    // memory itself published it, and the slice borrows the plugin, so nothing else reaches
    // the memory while it lives (extism's own `memory_bytes_mut` makes the same slice).
    Some(unsafe { std::slice::from_raw_parts_mut(base, size) })
}

/// `offset..offset + len` if it lies inside `size` bytes.
fn range_within(offset: u64, len: u64, size: usize) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (end <= size).then_some(start..end)
}

/// The bytes of the block a handle value names, freeing the block when `free`.
///
/// # Errors
/// `trap` when the value names no block, or a block that lies outside kernel memory.
pub(super) fn read_block(
    plugin: &mut CurrentPlugin,
    meter: &MemoryMeter,
    value: &Val,
    what: &str,
    free: bool,
) -> Result<Vec<u8>, Error> {
    let offset = value.i64().unwrap_or(0) as u64;
    let invalid = || {
        Error::new(
            ErrorKind::Trap,
            format!("{what} is not a valid block: {}", offset as i64),
        )
    };
    if offset == 0 {
        return Err(invalid());
    }
    let bytes = block(plugin, meter, offset).ok_or_else(invalid)?.to_vec();
    if free {
        // SAFETY: the kernel just named this block, `bytes.len()` long.
        let handle = unsafe { MemoryHandle::new(offset, bytes.len() as u64) };
        // Freeing a block that was just read cannot fail.
        let _ = plugin.memory_free(handle);
    }
    Ok(bytes)
}

/// The block at `offset`, when the kernel knows one there and it lies inside its memory;
/// offset 0, the ABI's "nothing", is an empty block.
pub(super) fn block<'p>(
    plugin: &'p mut CurrentPlugin,
    meter: &MemoryMeter,
    offset: u64,
) -> Option<&'p [u8]> {
    if offset == 0 {
        return Some(&[]);
    }
    let len = plugin.memory_length(offset).ok().filter(|len| *len > 0)?;
    let memory: &'p [u8] = kernel_bytes(plugin, meter)?;
    let range = range_within(offset, len, memory.len())?;
    Some(&memory[range])
}

/// A new block holding `bytes`, as a value to hand the pack (0, the ABI's "nothing", for
/// no bytes).
///
/// # Errors
/// extism's own error when the kernel has no room (the memory limit); `trap` when the block
/// the kernel gave lies outside its memory (the pack corrupted the kernel's bookkeeping).
pub(super) fn new_block(
    plugin: &mut CurrentPlugin,
    meter: &MemoryMeter,
    bytes: &[u8],
) -> Result<Val, extism::Error> {
    if bytes.is_empty() {
        return Ok(Val::I64(0));
    }
    let handle = plugin.memory_alloc(bytes.len() as u64)?;
    let memory = kernel_bytes(plugin, meter).unwrap_or_default();
    let Some(range) = range_within(handle.offset(), bytes.len() as u64, memory.len()) else {
        return Err(extism::Error::new(Error::new(
            ErrorKind::Trap,
            "the kernel handed out a block outside its memory: the pack overwrote the \
             kernel's bookkeeping",
        )));
    };
    memory[range].copy_from_slice(bytes);
    Ok(Val::I64(handle.offset() as i64))
}

/// What the seal of one instance's current call found.
#[derive(Default)]
pub(crate) struct Seal {
    /// Why the call's kernel state cannot be trusted, if it cannot.
    violation: Option<String>,
}

/// Forgets the last call's findings before a call.
pub(crate) fn begin_call(seal: &UserData<Seal>) {
    if let Ok(shared) = seal.get() {
        shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .violation = None;
    }
}

/// Why the call that just ended left kernel state the host must not read, if it did.
pub(crate) fn violation(seal: &UserData<Seal>) -> Option<String> {
    let shared = seal.get().ok()?;
    let found = shared
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .violation
        .take();
    found
}

/// `output_offset` and `output_length`, shadowing the kernel's: each checks the call's
/// kernel state ([`seal_state`]) and answers with its half of the output range it leaves.
/// extism asks for both when a call ends, before it reads anything.
pub(super) fn seal_functions(
    seal: &UserData<Seal>,
    meter: &Arc<MemoryMeter>,
    gate: &LinkGate,
) -> Vec<Function> {
    // Each name with the half of the (offset, length) pair it answers.
    [("output_offset", 0), ("output_length", 1)]
        .into_iter()
        .map(|(name, half)| {
            let meter = meter.clone();
            gate.function(
                name,
                [],
                [ValType::I64],
                seal.clone(),
                move |plugin, _, outputs, seal| {
                    let (output, violation) = seal_state(plugin, &meter);
                    if violation.is_some() {
                        seal.get()?
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .violation = violation;
                    }
                    let answer = if half == 0 { output.0 } else { output.1 };
                    outputs[0] = Val::I64(answer as i64);
                    Ok(())
                },
            )
            .with_namespace(EXTISM_ENV)
        })
        .collect()
}

/// The output range the kernel's root records, or (0, 0) when it lies outside memory, and
/// what is wrong with the kernel's state, if anything. An error block outside memory is
/// withdrawn here (the kernel's error is cleared) so that extism never reads it.
fn seal_state(plugin: &mut CurrentPlugin, meter: &MemoryMeter) -> ((u64, u64), Option<String>) {
    let Some(memory) = kernel_bytes(plugin, meter) else {
        return ((0, 0), Some("the kernel's memory is gone".into()));
    };
    let size = memory.len();
    let field = |at: usize| {
        memory.get(at..at + 8).map_or(0, |bytes| {
            u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]))
        })
    };
    let initialized = memory.get(ROOT_INITIALIZED).is_some_and(|flag| *flag != 0);
    let (error, heap_length) = (field(ROOT_ERROR), field(ROOT_HEAP_LENGTH));
    let (mut offset, mut length) = (field(ROOT_OUTPUT_OFFSET), field(ROOT_OUTPUT_LENGTH));
    let mut violation = None;
    if length != 0 && range_within(offset, length, size).is_none() {
        violation = Some(format!(
            "output_set was given {length} bytes at {offset}, outside kernel memory"
        ));
        (offset, length) = (0, 0);
    }
    // The kernel grows its memory only when its heap (as the root counts it) is full, so a
    // heap longer than the memory would have the next call's input written past the end,
    // and one shorter than the root wraps the kernel's arithmetic around. The root lies
    // below `store_u64`'s reach and no pack is known to rewrite it through the kernel; this
    // stays because extism writes the next input by it, unchecked.
    let heap_fits = (ROOT_SIZE..=(size as u64).saturating_sub(ROOT_SIZE)).contains(&heap_length);
    if initialized && !heap_fits {
        violation = Some("the pack overwrote the kernel's bookkeeping".into());
    }
    if error != 0 {
        let len = plugin.memory_length(error).unwrap_or(0);
        if range_within(error, len, size).is_none() {
            plugin.clear_error();
            violation = Some("error_set was given an invalid block".into());
        }
    }
    ((offset, length), violation)
}
