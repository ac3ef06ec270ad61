//! Every host access to the extism kernel's memory, bounded by that memory's true size.
//!
//! extism 1.30 keeps its allocator's bookkeeping inside the kernel's linear memory: each
//! block's length in a header before it, and the heap's length and the call's output range
//! and error block in a root at address 1. A pack can rewrite the headers and the output
//! length through `store_u64`, and can make the kernel itself write the root's heap length
//! (its `alloc` wraps huge sizes around: `alloc(-7)` gives a block longer than memory).
//! extism's host side trusts all of it: it reads a call's output and error message, and
//! writes each call's input, with no bounds check, so one forged length made the host read
//! or write past the mapping and die (the case `fuzz/regressions/load-1892e0ca6c46ffae.bin`
//! keeps). So:
//! - packhost's own host functions reach kernel memory only through [`read_block`],
//!   [`new_block`] and [`block`], which check each range against the memory's size as its
//!   owner publishes it ([`MemoryMeter::memory_at`]);
//! - `output_offset`, `output_length` and `reset` are shadowed ([`shadowed_functions`]).
//!   extism asks for the output range first when a call ends, before it reads anything, and
//!   nothing of the pack runs after, so `output_offset` seals the call: an output range or
//!   error block outside memory is withdrawn, and the call fails with `trap`. extism resets
//!   the kernel right before it writes each call's input, so `reset` refuses a kernel whose
//!   heap claims more memory than there is (the call fails with `trap`, or the start-up, whose
//!   first reset this is, with `invalid_pack`).

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
const ROOT_POSITION: usize = ROOT + 8;
const ROOT_HEAP_LENGTH: usize = ROOT + 16;
const ROOT_ERROR: usize = ROOT + 24;
const ROOT_INPUT_OFFSET: usize = ROOT + 32;
const ROOT_INPUT_LENGTH: usize = ROOT + 40;
const ROOT_OUTPUT_OFFSET: usize = ROOT + 48;
const ROOT_OUTPUT_LENGTH: usize = ROOT + 56;
/// The root's size: the heap the kernel manages (its blocks) starts right after it.
const ROOT_SIZE: usize = 64;
const BLOCKS: usize = ROOT + ROOT_SIZE;

/// The whole of the kernel's memory as one slice, as long as the memory really is.
fn kernel_bytes<'p>(plugin: &'p mut CurrentPlugin, meter: &MemoryMeter) -> Option<&'p mut [u8]> {
    // extism's pointer only names the memory; the slice is made from the mapping's own.
    let base = plugin.memory_bytes(MemoryHandle::null()).ok()?.as_ptr();
    let (mapping, size) = meter.memory_at(base)?;
    // SAFETY: the first `size` bytes of the mapping are the memory's accessible part, as the
    // memory itself published it, and the slice borrows the plugin, so nothing else reaches
    // the memory while it lives (extism's own `memory_bytes_mut` makes the same slice).
    Some(unsafe { std::slice::from_raw_parts_mut(mapping.as_ptr(), size) })
}

/// The root's `u64` at `at` (0 past the end of memory).
fn root_field(memory: &[u8], at: usize) -> u64 {
    memory
        .get(at..at + 8)
        .and_then(|bytes| bytes.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn set_root_field(memory: &mut [u8], at: usize, value: u64) {
    if let Some(bytes) = memory.get_mut(at..at + 8) {
        bytes.copy_from_slice(&value.to_le_bytes());
    }
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

/// `output_offset`, `output_length` and `reset`, shadowing the kernel's (see the module's
/// doc). A pack that imports them gets the same answers.
pub(super) fn shadowed_functions(
    seal: &UserData<Seal>,
    meter: &Arc<MemoryMeter>,
    gate: &LinkGate,
) -> Vec<Function> {
    let (for_offset, for_length, for_reset) = (meter.clone(), meter.clone(), meter.clone());
    vec![
        gate.function(
            "output_offset",
            [],
            [ValType::I64],
            seal.clone(),
            move |plugin, _, outputs, seal| {
                let (offset, violation) = seal_call(plugin, &for_offset)?;
                if violation.is_some() {
                    seal.get()?
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .violation = violation;
                }
                outputs[0] = Val::I64(offset as i64);
                Ok(())
            },
        )
        .with_namespace(EXTISM_ENV),
        gate.function(
            "output_length",
            [],
            [ValType::I64],
            seal.clone(),
            move |plugin, _, outputs, _| {
                let memory = kernel_bytes(plugin, &for_length).unwrap_or_default();
                outputs[0] = Val::I64(output_range(memory).map_or(0, |(_, length)| length) as i64);
                Ok(())
            },
        )
        .with_namespace(EXTISM_ENV),
        gate.function("reset", [], [], seal.clone(), move |plugin, _, _, _| {
            reset(plugin, &for_reset).map_err(extism::Error::new)
        })
        .with_namespace(EXTISM_ENV),
    ]
}

/// The output range the kernel's root records, when it lies inside memory (an empty one is
/// always (0, 0), so extism never offsets a pointer by a number the pack chose), or what is
/// wrong with it.
fn output_range(memory: &[u8]) -> Result<(u64, u64), String> {
    let offset = root_field(memory, ROOT_OUTPUT_OFFSET);
    let length = root_field(memory, ROOT_OUTPUT_LENGTH);
    match length {
        0 => Ok((0, 0)),
        _ => range_within(offset, length, memory.len())
            .map(|_| (offset, length))
            .ok_or_else(|| {
                format!("output_set was given {length} bytes at {offset}, outside kernel memory")
            }),
    }
}

/// The seal at the end of a call: the output offset to hand extism (0 when the range lies
/// outside memory), and what the call got wrong, if anything. An error block outside memory
/// is withdrawn (the kernel's error is cleared) so that extism never reads it.
///
/// # Errors
/// The kernel's own failure to measure the error block: the call's fuel ran out.
fn seal_call(
    plugin: &mut CurrentPlugin,
    meter: &MemoryMeter,
) -> Result<(u64, Option<String>), extism::Error> {
    let Some(memory) = kernel_bytes(plugin, meter) else {
        return Ok((0, Some("the kernel's memory is gone".into())));
    };
    let size = memory.len();
    let error = root_field(memory, ROOT_ERROR);
    let (offset, mut violation) = match output_range(memory) {
        Ok((offset, _)) => (offset, None),
        Err(outside) => (0, Some(outside)),
    };
    if error != 0 {
        let len = plugin.memory_length(error)?;
        if range_within(error, len, size).is_none() {
            plugin.clear_error();
            violation = Some("error_set was given an invalid block".into());
        }
    }
    Ok((offset, violation))
}

/// What the kernel's `reset` does (every block handed out marked unused, and the position,
/// error, input and output forgotten), refusing a kernel whose heap claims more memory than
/// there is or less than its root: the kernel grows its memory only when that count says the
/// heap is full, and extism writes the input it allocates next without a check. A kernel not
/// yet set up is left to set itself up on its next use.
///
/// # Errors
/// `trap` for a kernel the pack broke.
fn reset(plugin: &mut CurrentPlugin, meter: &MemoryMeter) -> Result<(), Error> {
    let broken = |why: &str| Error::new(ErrorKind::Trap, why);
    let memory =
        kernel_bytes(plugin, meter).ok_or_else(|| broken("the kernel's memory is gone"))?;
    if memory.get(ROOT_INITIALIZED).is_none_or(|flag| *flag == 0) {
        return Ok(());
    }
    let heap = root_field(memory, ROOT_HEAP_LENGTH);
    let fits = usize::try_from(heap)
        .is_ok_and(|heap| heap >= ROOT_SIZE && heap.saturating_add(ROOT_SIZE) <= memory.len());
    if !fits {
        return Err(broken("the pack overwrote the kernel's bookkeeping"));
    }
    let used = usize::try_from(root_field(memory, ROOT_POSITION)).unwrap_or(usize::MAX);
    let end = BLOCKS.saturating_add(used).min(memory.len());
    if let Some(blocks) = memory.get_mut(BLOCKS..end) {
        blocks.fill(0);
    }
    for field in [
        ROOT_POSITION,
        ROOT_ERROR,
        ROOT_INPUT_OFFSET,
        ROOT_INPUT_LENGTH,
        ROOT_OUTPUT_OFFSET,
        ROOT_OUTPUT_LENGTH,
    ] {
        set_root_field(memory, field, 0);
    }
    Ok(())
}
