//! The Extism ABI's "kernel memory": the blocks a pack allocates through `alloc`, reads and
//! writes 8 bytes at a time through `load_*`/`store_*`, and hands over as output, error,
//! config key, var, log line or HTTP request.
//!
//! The bytes live in a second wasm memory inside the pack (`kernel_wasm.rs` puts it there
//! at compile time), so that the hot `load_*`, `store_*` and `input_load_*` calls stay in
//! wasm. The block table lives here, on the host: [`Kernel`] says where blocks are, and
//! the functions below move bytes in and out through the store and keep the bounds the
//! injected functions check. Offsets are indices into kernel memory; offset 0 is never
//! handed out, because the ABI uses it for "nothing". Every block is released at the start
//! of every call, as the official hosts do. What else an instance keeps between calls
//! (linear memory, globals, tables, vars) is the pack's `isolation` option's business: by
//! default no instance serves two calls.

use std::ops::Range;

use wasmtime::{AsContext, AsContextMut, Global, Instance, Memory, StoreContextMut, Val};

use super::kernel_wasm::{Bound, MEMORY_EXPORT};
use super::state::HostState;

/// Where the first block starts: offset 0 means "no block", and 8 keeps blocks aligned.
const FIRST_OFFSET: u64 = 8;

/// Blocks are rounded up to this, so `load_u64`/`store_u64` on a block stay aligned.
const ALIGN: u64 = 8;

const WASM_PAGE: u64 = 65536;

/// One allocation.
#[derive(Debug, Clone, Copy)]
struct Block {
    offset: u64,
    /// The length the pack asked for (what `length` returns).
    len: u64,
    /// The space the block occupies, `len` rounded up to [`ALIGN`].
    capacity: u64,
    free: bool,
}

/// The pack's kernel memory and the globals holding the bounds its injected functions check.
#[derive(Debug, Clone, Copy)]
pub(super) struct KernelHandles {
    memory: Memory,
    bounds: [Global; Bound::ALL.len()],
}

impl KernelHandles {
    /// The rewritten pack's kernel memory and bounds, or `None` for a module that is no
    /// Extism plugin (it was not rewritten).
    fn of(instance: &Instance, store: &mut impl AsContextMut) -> Option<Self> {
        let memory = instance.get_memory(&mut *store, MEMORY_EXPORT)?;
        let mut bounds = Vec::with_capacity(Bound::ALL.len());
        for bound in Bound::ALL {
            bounds.push(instance.get_global(&mut *store, bound.export_name())?);
        }
        Some(KernelHandles {
            memory,
            bounds: bounds.try_into().ok()?,
        })
    }
}

/// The block table of one instance's kernel memory.
#[derive(Debug)]
pub(super) struct Kernel {
    /// The end of the bytes in use (at least [`FIRST_OFFSET`]).
    top: u64,
    /// The highest `top` has been in this instance: bytes past it were never handed out,
    /// so they are still zero.
    touched: u64,
    /// Every block from [`FIRST_OFFSET`] up, in offset order (blocks are carved from the end
    /// or reused in place, so the order holds without sorting).
    blocks: Vec<Block>,
    /// Count of blocks marked free, so `alloc` only scans when reuse is possible.
    free_blocks: usize,
    /// Set once the instance exists (never for modules that are no Extism plugin).
    pub(super) handles: Option<KernelHandles>,
}

impl Default for Kernel {
    fn default() -> Self {
        Kernel {
            top: FIRST_OFFSET,
            touched: FIRST_OFFSET,
            blocks: Vec::new(),
            free_blocks: 0,
            handles: None,
        }
    }
}

impl Kernel {
    /// Bytes in use: what the memory limit counts for the kernel.
    pub(super) fn size(&self) -> u64 {
        self.top
    }

    /// How much the kernel would grow to hold a new block of `len` bytes (0 when a freed
    /// block can be reused), so the caller can check the memory limit first.
    pub(super) fn growth_for(&self, len: u64) -> u64 {
        if self.reusable(len).is_some() {
            0
        } else {
            round_up(len)
        }
    }

    fn reset(&mut self) {
        self.top = FIRST_OFFSET;
        self.blocks.clear();
        self.free_blocks = 0;
    }

    /// Records a block of `len` bytes and returns its offset, or 0 for a zero-length request
    /// (the ABI's "nothing", which every PDK accepts as an empty block).
    fn alloc(&mut self, len: u64) -> u64 {
        if len == 0 {
            return 0;
        }
        if let Some(index) = self.reusable(len) {
            let block = &mut self.blocks[index];
            block.free = false;
            block.len = len;
            self.free_blocks -= 1;
            return block.offset;
        }
        let offset = self.top;
        let capacity = round_up(len);
        self.top = offset.saturating_add(capacity);
        self.blocks.push(Block {
            offset,
            len,
            capacity,
            free: false,
        });
        offset
    }

    /// Frees the block at `offset`; unknown offsets (and 0) are ignored, as in the official
    /// kernel. Freeing the last block gives its space back at once.
    fn free(&mut self, offset: u64) {
        let Some(index) = self.block_index(offset) else {
            return;
        };
        if self.blocks[index].free {
            return;
        }
        self.blocks[index].free = true;
        self.free_blocks += 1;
        while let Some(last) = self.blocks.last() {
            if !last.free {
                break;
            }
            self.top = last.offset;
            self.blocks.pop();
            self.free_blocks -= 1;
        }
    }

    /// The length of the live block at `offset`, or 0 when there is none.
    pub(super) fn length(&self, offset: u64) -> u64 {
        self.block_index(offset)
            .map(|index| self.blocks[index])
            .filter(|block| !block.free)
            .map_or(0, |block| block.len)
    }

    /// Where the live block at `offset` lies, or `None` when there is none.
    fn block(&self, offset: u64) -> Option<Range<usize>> {
        let block = self.blocks[self.block_index(offset)?];
        if block.free {
            return None;
        }
        self.range(offset, block.len)
    }

    /// `len` bytes at `offset`, or `None` when they run past the bytes in use. A
    /// zero-length range is always valid, as the ABI passes (0, 0) for empty output.
    fn range(&self, offset: u64, len: u64) -> Option<Range<usize>> {
        if len == 0 {
            return Some(0..0);
        }
        let end = offset.checked_add(len).filter(|end| *end <= self.top)?;
        Some(usize::try_from(offset).ok()?..usize::try_from(end).ok()?)
    }

    fn block_index(&self, offset: u64) -> Option<usize> {
        self.blocks
            .binary_search_by_key(&offset, |block| block.offset)
            .ok()
    }

    /// The first freed block big enough for `len` bytes.
    fn reusable(&self, len: u64) -> Option<usize> {
        if self.free_blocks == 0 {
            return None;
        }
        self.blocks
            .iter()
            .position(|block| block.free && block.capacity >= len)
    }
}

/// `len` rounded up to the block alignment; saturates instead of wrapping for sizes near
/// `u64::MAX`, which the memory limit then refuses.
fn round_up(len: u64) -> u64 {
    len.checked_next_multiple_of(ALIGN).unwrap_or(u64::MAX)
}

/// The reserved bytes below [`FIRST_OFFSET`], as read before kernel memory has a page.
static RESERVED: [u8; FIRST_OFFSET as usize] = [0; FIRST_OFFSET as usize];

/// Offers the kernel memory of `instance`, when it is a rewritten module, as the store's.
/// It is taken when the store has none yet, or has one that never held a byte: a plugin's
/// linked modules start before its main module, so the first of them that is rewritten
/// lends its kernel memory to their start-up, and the main module's, whose injected
/// functions serve the hot calls, takes over once it exists unless that start-up used the
/// lent one (whose bytes stay counted then). The bounds of a memory given up stay 0, so
/// that module's injected functions send every access to the host.
pub(super) fn offer(mut store: impl AsContextMut<Data = HostState>, instance: &Instance) {
    let mut store = store.as_context_mut();
    let Some(offered) = KernelHandles::of(instance, &mut store) else {
        return;
    };
    let held = store.data().kernel.handles;
    if held.is_some_and(|held| held.memory.data_size(&store) > 0) {
        return;
    }
    store.data_mut().kernel.handles = Some(offered);
    if let Some(held) = held {
        for bound in held.bounds {
            // The rewrite's own `mut i64`s: setting one cannot fail.
            let _ = bound.set(&mut store, Val::I64(0));
        }
    }
    sync_bounds(&mut store, Some((0, 0)));
}

/// Releases every block and the last call's input, at the start of a call.
pub(super) fn reset(mut store: impl AsContextMut<Data = HostState>) {
    let mut store = store.as_context_mut();
    store.data_mut().kernel.reset();
    // The reserved bytes are readable and writable at offset 0; a call never sees the last
    // call's.
    if let Some(handles) = store.data().kernel.handles {
        if let Some(reserved) = handles
            .memory
            .data_mut(&mut store)
            .get_mut(..FIRST_OFFSET as usize)
        {
            reserved.fill(0);
        }
    }
    sync_bounds(&mut store, Some((0, 0)));
}

/// Points the injected functions at the bytes in use, and at the input's copy when
/// `input` (its offset and length) is given. Bounds are 0 while kernel memory is smaller
/// than the bytes in use (before its first page), which sends every access to the host.
fn sync_bounds(store: &mut impl AsContextMut<Data = HostState>, input: Option<(u64, u64)>) {
    let Some(handles) = store.as_context().data().kernel.handles else {
        return;
    };
    let top = store.as_context().data().kernel.top;
    let top = if (handles.memory.data_size(&*store) as u64) < top {
        0
    } else {
        top
    };
    let mut set = |bound: Bound, value: u64| {
        // The globals are the rewrite's own `mut i64`s: setting one cannot fail.
        let _ = handles.bounds[bound.position() as usize].set(&mut *store, Val::I64(value as i64));
    };
    set(Bound::Byte, top);
    set(Bound::Word, top.saturating_sub(7));
    if let Some((offset, len)) = input {
        set(Bound::InputBase, offset);
        set(Bound::InputByte, len);
        set(Bound::InputWord, len.saturating_sub(7));
    }
}

/// Allocates a block of `len` bytes and hands it, with the store's state, to `fill`, which
/// writes all of it when `fills_block` (so only the padding after it needs zeroing);
/// returns its offset, or 0 (the ABI's failure) when it would take the instance past its
/// memory limit.
fn alloc_with(
    mut store: impl AsContextMut<Data = HostState>,
    len: u64,
    fills_block: bool,
    fill: impl FnOnce(&mut [u8], &HostState),
) -> u64 {
    let mut store = store.as_context_mut();
    let state = store.data_mut();
    let Some(handles) = state.kernel.handles else {
        return 0;
    };
    let growth = state.kernel.growth_for(len);
    if !state.limiter.admit(growth, state.kernel.size()) {
        return 0;
    }
    let before = state.kernel.top;
    let offset = state.kernel.alloc(len);
    let (top, touched) = (state.kernel.top, state.kernel.touched);
    if !hold_in_memory(&mut store, handles.memory, top) {
        store.data_mut().kernel.free(offset);
        return 0;
    }
    let (bytes, state) = handles.memory.data_and_store_mut(&mut store);
    // A block carved from the end starts zeroed, as it always has: bytes past `touched`
    // were never handed out, those below it may hold an earlier block's (a reused block
    // keeps what the pack wrote to it this call).
    let stale_end = touched.min(top);
    let zero_from = if fills_block { before + len } else { before };
    if top > before && zero_from < stale_end {
        bytes[zero_from as usize..stale_end as usize].fill(0);
    }
    state.kernel.touched = touched.max(top);
    state.limiter.observe(state.kernel.size());
    if let Some(range) = state.kernel.block(offset) {
        fill(&mut bytes[range], state);
    }
    // A reused block moves no bound.
    if top != before {
        sync_bounds(&mut store, None);
    }
    offset
}

/// Grows kernel memory to hold its first `end` bytes; false when it cannot. The limiter
/// admitted the kernel's exact bytes already, so the pages that hold them are not counted
/// a second time.
fn hold_in_memory(store: &mut StoreContextMut<'_, HostState>, memory: Memory, end: u64) -> bool {
    let have = memory.data_size(&*store) as u64;
    if end <= have {
        return true;
    }
    store.data_mut().limiter.growing_kernel = true;
    let grown = memory.grow(&mut *store, (end - have).div_ceil(WASM_PAGE));
    store.data_mut().limiter.growing_kernel = false;
    grown.is_ok()
}

/// `range` of kernel memory's `bytes`; before its first page, the reserved zeros below
/// [`FIRST_OFFSET`] read as such.
fn in_kernel_memory(bytes: &[u8], range: Range<usize>) -> Option<&[u8]> {
    bytes.get(range.clone()).or_else(|| RESERVED.get(range))
}

/// Allocates a block of `len` bytes within the memory limit; 0 when refused.
pub(super) fn alloc(store: impl AsContextMut<Data = HostState>, len: u64) -> u64 {
    alloc_with(store, len, false, |_, _| {})
}

/// Allocates a block holding `data` within the memory limit; 0 when refused.
pub(super) fn alloc_bytes(store: impl AsContextMut<Data = HostState>, data: &[u8]) -> u64 {
    alloc_with(store, data.len() as u64, true, |block, _| {
        block.copy_from_slice(data)
    })
}

/// The block holding a copy of the call's input, made on first use (by `input_offset`, or
/// by an `input_load_*` the injected functions send to the host), after which the injected
/// functions read the input from it, as Extism's kernel keeps the input in a block. The
/// copy counts against the memory limit like any block; 0 for an empty input, or when the
/// copy does not fit, which fails nothing: the host then serves every `input_load_*`.
pub(super) fn input_block(mut store: impl AsContextMut<Data = HostState>) -> u64 {
    let mut store = store.as_context_mut();
    if let Some(offset) = store.data().call.input_offset {
        return offset;
    }
    let len = store.data().call.input.len() as u64;
    let refused_before = store.data().limiter.refused();
    let offset = alloc_with(&mut store, len, true, |block, state| {
        block.copy_from_slice(state.call.input.bytes());
    });
    let state = store.data_mut();
    // Asked once per call, whatever the answer.
    state.call.input_offset = Some(offset);
    if offset == 0 {
        // A copy the host chose to make is no refusal of the pack's own growth.
        state.limiter.set_refused(refused_before);
    } else {
        sync_bounds(&mut store, Some((offset, len)));
    }
    offset
}

/// Frees the block at `offset` (an unknown offset is ignored) and gives its bytes back to
/// the limiter, so freed blocks never count against the memory limit.
pub(super) fn free(mut store: impl AsContextMut<Data = HostState>, offset: u64) {
    let mut store = store.as_context_mut();
    let state = store.data_mut();
    let top = state.kernel.top;
    state.kernel.free(offset);
    state.limiter.observe(state.kernel.size());
    // Once the input's block is freed, its bytes may be another block's: the host serves
    // input_load_* from the caller's input again.
    let input = (state.call.input_offset == Some(offset) && offset != 0).then_some((0, 0));
    if state.kernel.top != top || input.is_some() {
        sync_bounds(&mut store, input);
    }
}

/// The bytes of the live block at `offset`, or `None` when there is none.
pub(super) fn block<T: AsContext<Data = HostState>>(store: &T, offset: u64) -> Option<&[u8]> {
    let range = store.as_context().data().kernel.block(offset)?;
    bytes_in(store, range)
}

/// Hands the bytes of the live block at `offset` (`None` when there is none) to `use_block`
/// together with the store's state.
pub(super) fn with_block<R>(
    mut store: impl AsContextMut<Data = HostState>,
    offset: u64,
    use_block: impl FnOnce(Option<&[u8]>, &mut HostState) -> R,
) -> R {
    let mut store = store.as_context_mut();
    let range = store.data().kernel.block(offset);
    match (store.data().kernel.handles, range) {
        (Some(handles), Some(range)) => {
            let (bytes, state) = handles.memory.data_and_store_mut(&mut store);
            use_block(in_kernel_memory(bytes, range), state)
        }
        // Blocks exist only in a rewritten pack, which has handles.
        _ => use_block(None, store.data_mut()),
    }
}

/// `len` bytes at `offset`, or `None` when they run past the bytes in use.
pub(super) fn bytes_at<T: AsContext<Data = HostState>>(
    store: &T,
    offset: u64,
    len: u64,
) -> Option<&[u8]> {
    let range = store.as_context().data().kernel.range(offset, len)?;
    bytes_in(store, range)
}

fn bytes_in<T: AsContext<Data = HostState>>(store: &T, range: Range<usize>) -> Option<&[u8]> {
    if range.is_empty() {
        return Some(&[]);
    }
    let store = store.as_context();
    let Some(handles) = store.data().kernel.handles else {
        return RESERVED.get(range);
    };
    in_kernel_memory(handles.memory.data(store), range)
}

/// Writes `value` at `offset` inside the bytes in use; `None` when it does not fit there.
pub(super) fn write(
    mut store: impl AsContextMut<Data = HostState>,
    offset: u64,
    value: &[u8],
) -> Option<()> {
    let mut store = store.as_context_mut();
    let range = store.data().kernel.range(offset, value.len() as u64)?;
    let handles = store.data().kernel.handles?;
    if handles.memory.data_size(&store) < range.end {
        // Only the reserved bytes lie past a kernel memory without pages.
        if !hold_in_memory(&mut store, handles.memory, range.end as u64) {
            return None;
        }
        sync_bounds(&mut store, None);
    }
    handles
        .memory
        .data_mut(&mut store)
        .get_mut(range)?
        .copy_from_slice(value);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_nonzero_aligned_and_sized() {
        let mut kernel = Kernel::default();
        let a = kernel.alloc(3);
        let b = kernel.alloc(10);
        assert_ne!(a, 0);
        assert_eq!(a % ALIGN, 0);
        assert_eq!(b % ALIGN, 0);
        assert!(b >= a + 3);
        assert_eq!(kernel.length(a), 3);
        assert_eq!(kernel.length(b), 10);
        assert_eq!(kernel.length(a + 1), 0, "only block starts have a length");
        assert_eq!(kernel.block(b), Some(b as usize..b as usize + 10));
    }

    #[test]
    fn zero_length_alloc_is_the_empty_block() {
        let mut kernel = Kernel::default();
        assert_eq!(kernel.alloc(0), 0);
        assert_eq!(kernel.range(0, 0), Some(0..0));
    }

    #[test]
    fn ranges_past_the_bytes_in_use_are_refused() {
        let mut kernel = Kernel::default();
        let block = kernel.alloc(16);
        assert!(kernel.range(block + 8, 8).is_some());
        assert_eq!(kernel.range(block + 9, 8), None);
        assert_eq!(kernel.range(u64::MAX, 1), None);
    }

    #[test]
    fn freeing_the_last_block_shrinks_and_freed_blocks_are_reused() {
        let mut kernel = Kernel::default();
        let first = kernel.alloc(64);
        let second = kernel.alloc(8);
        let size = kernel.size();
        kernel.free(second);
        assert!(kernel.size() < size);
        let third = kernel.alloc(8);
        assert_eq!(third, second);
        kernel.free(first);
        assert_eq!(kernel.length(first), 0);
        assert_eq!(kernel.growth_for(32), 0, "the freed 64-byte block fits 32");
        assert_eq!(kernel.alloc(32), first);
        assert_eq!(kernel.length(first), 32);
    }

    #[test]
    fn reset_releases_everything() {
        let mut kernel = Kernel::default();
        let block = kernel.alloc(5);
        kernel.reset();
        assert_eq!(kernel.block(block), None);
        assert_eq!(kernel.size(), FIRST_OFFSET);
    }
}
