//! The Extism ABI's "kernel memory", kept on the host: the blocks a pack allocates through
//! `alloc`, reads and writes 8 bytes at a time through `load_*`/`store_*`, and hands over
//! as output, error, config key, var, log line or HTTP request.
//!
//! Official Extism hosts keep this memory inside a second WebAssembly module (the kernel),
//! so every access is a call into wasm. Here it is a plain byte vector with a small block
//! table. Offsets are indices into that vector; offset 0 is never handed out, because the
//! ABI uses it for "nothing". The whole of it is released at the start of every call, as
//! the official hosts do. What else an instance keeps between calls (linear memory, globals,
//! tables, vars) is the pack's `isolation` option's business: by default no instance serves
//! two calls.

/// Where the first block starts: offset 0 means "no block", and 8 keeps blocks aligned.
const FIRST_OFFSET: u64 = 8;

/// Blocks are rounded up to this, so `load_u64`/`store_u64` on a block stay aligned.
const ALIGN: u64 = 8;

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

/// The kernel memory of one instance.
#[derive(Debug)]
pub(super) struct Kernel {
    bytes: Vec<u8>,
    /// Every block from [`FIRST_OFFSET`] up, in offset order (blocks are carved from the end
    /// or reused in place, so the order holds without sorting).
    blocks: Vec<Block>,
    /// Count of blocks marked free, so `alloc` only scans when reuse is possible.
    free_blocks: usize,
}

impl Default for Kernel {
    fn default() -> Self {
        Kernel {
            bytes: vec![0; FIRST_OFFSET as usize],
            blocks: Vec::new(),
            free_blocks: 0,
        }
    }
}

impl Kernel {
    /// Releases every block; the vector keeps its capacity for the next call.
    pub(super) fn reset(&mut self) {
        self.bytes.truncate(FIRST_OFFSET as usize);
        self.blocks.clear();
        self.free_blocks = 0;
    }

    /// Bytes in use: what the memory limit counts for the kernel.
    pub(super) fn size(&self) -> u64 {
        self.bytes.len() as u64
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

    /// Allocates `len` bytes and returns the block's offset, or 0 for a zero-length request
    /// (the ABI's "nothing", which every PDK accepts as an empty block).
    pub(super) fn alloc(&mut self, len: u64) -> u64 {
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
        let offset = self.bytes.len() as u64;
        let capacity = round_up(len);
        self.bytes.resize((offset + capacity) as usize, 0);
        self.blocks.push(Block {
            offset,
            len,
            capacity,
            free: false,
        });
        offset
    }

    /// Allocates a block holding `data`.
    pub(super) fn alloc_bytes(&mut self, data: &[u8]) -> u64 {
        let offset = self.alloc(data.len() as u64);
        if offset != 0 {
            let start = offset as usize;
            self.bytes[start..start + data.len()].copy_from_slice(data);
        }
        offset
    }

    /// Frees the block at `offset`; unknown offsets (and 0) are ignored, as in the official
    /// kernel. Freeing the last block gives its space back at once.
    pub(super) fn free(&mut self, offset: u64) {
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
            self.bytes.truncate(last.offset as usize);
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

    /// The bytes of the live block at `offset`, or `None` when there is none.
    pub(super) fn block(&self, offset: u64) -> Option<&[u8]> {
        let block = self.blocks[self.block_index(offset)?];
        if block.free {
            return None;
        }
        self.bytes_at(offset, block.len)
    }

    /// `len` bytes at `offset`, or `None` when they run past the kernel memory. A zero-length
    /// range is always valid, as the ABI passes (0, 0) for empty output.
    pub(super) fn bytes_at(&self, offset: u64, len: u64) -> Option<&[u8]> {
        if len == 0 {
            return Some(&[]);
        }
        let end = offset.checked_add(len)?;
        self.bytes.get(offset as usize..usize::try_from(end).ok()?)
    }

    /// Reads one byte.
    pub(super) fn load_u8(&self, offset: u64) -> Option<u8> {
        self.bytes.get(usize::try_from(offset).ok()?).copied()
    }

    /// Reads 8 bytes, little-endian.
    pub(super) fn load_u64(&self, offset: u64) -> Option<u64> {
        let bytes = self.bytes_at(offset, 8)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    /// Writes one byte; `None` when `offset` is outside the kernel memory.
    pub(super) fn store_u8(&mut self, offset: u64, value: u8) -> Option<()> {
        *self.bytes.get_mut(usize::try_from(offset).ok()?)? = value;
        Some(())
    }

    /// Writes 8 bytes, little-endian.
    pub(super) fn store_u64(&mut self, offset: u64, value: u64) -> Option<()> {
        let start = usize::try_from(offset).ok()?;
        self.bytes
            .get_mut(start..start.checked_add(8)?)?
            .copy_from_slice(&value.to_le_bytes());
        Some(())
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
    }

    #[test]
    fn zero_length_alloc_is_the_empty_block() {
        let mut kernel = Kernel::default();
        assert_eq!(kernel.alloc(0), 0);
        assert_eq!(kernel.bytes_at(0, 0), Some(&[][..]));
    }

    #[test]
    fn words_round_trip_and_out_of_range_is_refused() {
        let mut kernel = Kernel::default();
        let block = kernel.alloc(16);
        kernel.store_u64(block + 8, 0x0102_0304_0506_0708).unwrap();
        assert_eq!(kernel.load_u64(block + 8), Some(0x0102_0304_0506_0708));
        assert_eq!(kernel.load_u8(block + 8), Some(0x08));
        assert_eq!(kernel.load_u64(block + 9), None);
        assert_eq!(kernel.store_u8(u64::MAX, 1), None);
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
        let block = kernel.alloc_bytes(b"hello");
        assert_eq!(kernel.block(block), Some(&b"hello"[..]));
        kernel.reset();
        assert_eq!(kernel.block(block), None);
        assert_eq!(kernel.size(), FIRST_OFFSET);
    }
}
