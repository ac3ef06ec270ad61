//! Linear memories that count their own size, so every call can report its exact peak.
//!
//! Wasmtime lets an embedder supply linear memory through a `MemoryCreator`. Ours maps the
//! reservation wasmtime asks for with no access, opens it page by page as the memory
//! grows, and adds each growth to a [`MemoryMeter`] shared by every memory of one engine.
//! Because each instance owns its engine (see the engine module), the meter is exactly
//! that instance's footprint: the pack's memory plus the Extism ABI's. The meter also knows
//! each memory's mapping and true size by its base address, which is how `kernel.rs`
//! bounds every host access to the kernel's memory.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use wasmtime::{LinearMemory, MemoryCreator, MemoryType};

/// Live and peak linear-memory bytes of one engine's memories, and the cap on them.
///
/// The cap is enforced here rather than by extism's limiter, which starts counting only
/// after instantiation and so lets a pack's initial memory come on top of the limit.
#[derive(Debug)]
pub(crate) struct MemoryMeter {
    limit: u64,
    current: AtomicU64,
    peak: AtomicU64,
    refused: AtomicBool,
    /// Each live memory's mapping and accessible size, as the memory publishes them.
    sizes: Mutex<Vec<(Mapping, Arc<AtomicUsize>)>>,
}

/// The start of a live memory's mapping, as its owner made it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mapping(*mut u8);

// SAFETY: only an address; whoever dereferences it answers for what it reaches (see
// `MemoryMeter::memory_at`).
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// The mapping's start, with the provenance of the mapping itself.
    pub(crate) fn as_ptr(self) -> *mut u8 {
        self.0
    }
}

impl MemoryMeter {
    /// A meter that refuses growth past `limit` bytes in total.
    pub(crate) fn with_limit(limit: u64) -> Self {
        MemoryMeter {
            limit,
            current: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            refused: AtomicBool::new(false),
            sizes: Mutex::new(Vec::new()),
        }
    }

    /// The live memory of this meter's that starts at `base`: its mapping and accessible
    /// size. The first `size` bytes from the mapping's start are readable and writable
    /// for as long as the memory lives.
    pub(crate) fn memory_at(&self, base: *const u8) -> Option<(Mapping, usize)> {
        let sizes = self.sizes.lock().unwrap_or_else(PoisonError::into_inner);
        sizes
            .iter()
            .find(|(start, _)| std::ptr::eq(start.0, base))
            .map(|(start, size)| (*start, size.load(Ordering::Acquire)))
    }

    /// The cap, in bytes.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes the memories may still grow by before the cap.
    pub(crate) fn remaining(&self) -> u64 {
        self.limit
            .saturating_sub(self.current.load(Ordering::Relaxed))
    }

    /// Starts a new measurement window at the current size.
    pub(crate) fn reset_peak(&self) {
        self.peak
            .store(self.current.load(Ordering::Relaxed), Ordering::Relaxed);
        self.refused.store(false, Ordering::Relaxed);
    }

    /// True when growth was refused since the last [`MemoryMeter::reset_peak`]: a trap that
    /// follows is the pack failing to cope with the memory limit.
    pub(crate) fn refused_growth(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    /// Claims `bytes` more, or refuses (and remembers refusing) when the cap would break.
    fn try_grow(&self, bytes: u64) -> bool {
        let claimed = self
            .current
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                now.checked_add(bytes).filter(|total| *total <= self.limit)
            });
        match claimed {
            Ok(before) => {
                self.peak.fetch_max(before + bytes, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.refused.store(true, Ordering::Relaxed);
                false
            }
        }
    }

    /// Holds `bytes` of host memory the pack fills through the ABI (vars), under the same
    /// cap; a refusal is remembered like a refused growth.
    pub(crate) fn hold(&self, bytes: u64) -> bool {
        self.try_grow(bytes)
    }

    /// Gives back `bytes` taken with [`MemoryMeter::hold`].
    pub(crate) fn release_held(&self, bytes: u64) {
        self.released(bytes);
    }

    /// The largest total size seen since the last [`MemoryMeter::reset_peak`].
    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    fn released(&self, bytes: u64) {
        self.current.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Hands wasmtime [`MeteredMemory`]s that report to one meter.
pub(crate) struct MeteredMemoryCreator {
    pub(crate) meter: Arc<MemoryMeter>,
}

// SAFETY: every memory it creates upholds the `LinearMemory` contract (see below).
unsafe impl MemoryCreator for MeteredMemoryCreator {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        maximum: Option<usize>,
        reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        // Without a reservation wasmtime bounds-checks every access and tolerates a moving
        // base; a fixed reservation of the maximum (or 4 GiB) keeps the base still anyway.
        let capacity = reserved_size_in_bytes
            .unwrap_or_else(|| maximum.unwrap_or(1 << 32))
            .max(minimum);
        let memory = MeteredMemory::reserve(capacity, guard_size_in_bytes, self.meter.clone())?;
        let mut memory = Box::new(memory);
        memory.grow_to(minimum).map_err(|err| err.to_string())?;
        Ok(memory)
    }
}

/// One linear memory in its own anonymous mapping: `capacity` bytes that may become
/// accessible, followed by the guard region wasmtime relies on to elide bounds checks.
struct MeteredMemory {
    base: *mut u8,
    mapping_len: usize,
    capacity: usize,
    size: usize,
    /// `size` as published to the meter ([`MemoryMeter::memory_at`]).
    published: Arc<AtomicUsize>,
    accessible: usize,
    meter: Arc<MemoryMeter>,
}

// SAFETY: the mapping is owned by this value alone; wasmtime serialises access to it.
unsafe impl Send for MeteredMemory {}
// SAFETY: as above; `&self` methods only read plain fields.
unsafe impl Sync for MeteredMemory {}

fn os_page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096).max(4096)
}

fn round_up(value: usize, to: usize) -> usize {
    value.div_ceil(to) * to
}

impl MeteredMemory {
    fn reserve(capacity: usize, guard: usize, meter: Arc<MemoryMeter>) -> Result<Self, String> {
        let page = os_page_size();
        let capacity = round_up(capacity, page);
        let mapping_len = capacity
            .checked_add(round_up(guard, page))
            .ok_or("memory reservation overflows")?;
        // SAFETY: a fresh private anonymous mapping with no access; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapping_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!(
                "could not reserve {mapping_len} bytes for linear memory: {}",
                std::io::Error::last_os_error()
            ));
        }
        let published = Arc::new(AtomicUsize::new(0));
        meter
            .sizes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((Mapping(base.cast()), published.clone()));
        Ok(MeteredMemory {
            base: base.cast(),
            mapping_len,
            capacity,
            size: 0,
            published,
            accessible: 0,
            meter,
        })
    }
}

// SAFETY: the base never moves; bytes below `size` are readable and writable and start
// zeroed (fresh anonymous pages); everything from `capacity` on stays inaccessible, which is
// the guard region wasmtime asked for.
unsafe impl LinearMemory for MeteredMemory {
    fn byte_size(&self) -> usize {
        self.size
    }

    fn byte_capacity(&self) -> usize {
        self.capacity
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        if new_size <= self.size {
            return Ok(());
        }
        if new_size > self.capacity {
            wasmtime::bail!(
                "linear memory cannot grow past its {} byte reservation",
                self.capacity
            );
        }
        if !self.meter.try_grow((new_size - self.size) as u64) {
            wasmtime::bail!("linear memory limit of {} bytes reached", self.meter.limit);
        }
        let wanted = round_up(new_size, os_page_size());
        if wanted > self.accessible {
            // SAFETY: the range lies inside our own mapping, above what is already open.
            let rc = unsafe {
                libc::mprotect(
                    self.base.add(self.accessible).cast(),
                    wanted - self.accessible,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            };
            if rc != 0 {
                self.meter.released((new_size - self.size) as u64);
                wasmtime::bail!(
                    "could not grow linear memory: {}",
                    std::io::Error::last_os_error()
                );
            }
            self.accessible = wanted;
        }
        self.size = new_size;
        self.published.store(new_size, Ordering::Release);
        Ok(())
    }

    fn as_ptr(&self) -> *mut u8 {
        self.base
    }
}

impl Drop for MeteredMemory {
    fn drop(&mut self) {
        self.meter.released(self.size as u64);
        let base = self.base;
        self.meter
            .sizes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(start, _)| !std::ptr::eq(start.0, base));
        // SAFETY: we own the whole mapping and nothing refers to it after drop.
        unsafe {
            libc::munmap(self.base.cast(), self.mapping_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_counted_and_memory_is_usable_and_zeroed() {
        let meter = Arc::new(MemoryMeter::with_limit(4 * 65536));
        let mut memory = MeteredMemory::reserve(1 << 20, 1 << 16, meter.clone()).unwrap();
        memory.grow_to(65536).unwrap();
        assert_eq!(meter.peak(), 65536);
        // SAFETY: the first 64 KiB are open.
        unsafe {
            assert_eq!(*memory.as_ptr().add(65535), 0);
            *memory.as_ptr().add(65535) = 7;
        }
        memory.grow_to(3 * 65536).unwrap();
        assert_eq!(meter.peak(), 3 * 65536);
        let (mapping, size) = meter.memory_at(memory.as_ptr()).unwrap();
        assert_eq!((mapping.as_ptr(), size), (memory.as_ptr(), 3 * 65536));
        assert!(
            memory.grow_to(5 * 65536).is_err(),
            "growing past the limit must fail"
        );
        assert!(meter.refused_growth());
        assert_eq!(
            memory.byte_size(),
            3 * 65536,
            "a refused growth changes nothing"
        );
        assert!(
            memory.grow_to(2 << 20).is_err(),
            "growing past the reservation must fail"
        );
        let base = memory.as_ptr();
        drop(memory);
        assert!(
            meter.memory_at(base).is_none(),
            "a dropped memory is forgotten"
        );
        meter.reset_peak();
        assert_eq!(meter.peak(), 0, "dropping a memory gives its bytes back");
    }
}
