//! Key-value storage the host lends a pack that asks for it (`kv: true` in [`pack!`]):
//! entries scoped to the calling tenant and this pack, kept by the host's backend.
//!
//! ```ignore
//! use packhost_pdk::kv;
//!
//! let seen = kv::get("last-event")?;
//! kv::set("last-event", b"evt_123")?;
//! // Adds one to a counter without losing a concurrent caller's increment.
//! let count = kv::update("count", |old| {
//!     let n: u64 = old.and_then(|b| String::from_utf8(b.to_vec()).ok()?.parse().ok()).unwrap_or(0);
//!     Some((n + 1).to_string().into_bytes())
//! })?;
//! ```
//!
//! A failed operation (not granted, a key or value over its cap, the tenant's quota full,
//! too many operations in one call) ends the call with the host's error code, so these
//! functions return only what the pack can act on.

use std::time::Duration;

use extism_pdk::Memory;

use crate::Error;

#[link(wasm_import_module = "packhost:host/kv")]
extern "C" {
    #[link_name = "get"]
    fn kv_get(key: u64) -> i64;
    #[link_name = "set"]
    fn kv_set(key: u64, value: u64, ttl_ms: i64);
    #[link_name = "delete"]
    fn kv_delete(key: u64) -> i32;
    #[link_name = "list"]
    fn kv_list(prefix: u64, after: i64) -> i64;
    #[link_name = "compare_and_set"]
    fn kv_compare_and_set(key: u64, expected: i64, value: i64, ttl_ms: i64) -> i32;
}

/// The sentinel for "no entry" on both sides of the ABI.
const NONE: i64 = -1;

/// Bytes as a kernel block for one host call: the host copies them, so the block is freed
/// when this guard goes.
struct Block(Option<Memory>);

impl Block {
    fn new(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.is_empty() {
            return Ok(Block(None));
        }
        Memory::from_bytes(bytes).map(|memory| Block(Some(memory)))
    }

    fn optional(bytes: Option<&[u8]>) -> Result<Option<Self>, Error> {
        bytes.map(Block::new).transpose()
    }

    fn offset(&self) -> u64 {
        self.0.as_ref().map_or(0, Memory::offset)
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Some(memory) = self.0.take() {
            memory.free();
        }
    }
}

fn offset_or_none(block: &Option<Block>) -> i64 {
    block.as_ref().map_or(NONE, |block| block.offset() as i64)
}

/// Reads and frees the block the host returned (0 is the empty block).
fn take(offset: i64) -> Vec<u8> {
    if offset == 0 {
        return Vec::new();
    }
    match Memory::find(offset as u64) {
        Some(memory) => {
            let bytes = memory.to_vec();
            memory.free();
            bytes
        }
        None => Vec::new(),
    }
}

fn ttl_ms(ttl: Option<Duration>) -> i64 {
    ttl.map_or(0, |ttl| {
        i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
    })
}

/// The value under `key`, or `None`.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
    let key = Block::new(key.as_bytes())?;
    // SAFETY: the import is packhost's `packhost:host/kv::get`; the block outlives the call.
    let offset = unsafe { kv_get(key.offset()) };
    Ok((offset != NONE).then(|| take(offset)))
}

/// Stores `value` under `key`.
pub fn set(key: &str, value: &[u8]) -> Result<(), Error> {
    set_with_ttl(key, value, None)
}

/// Stores `value` under `key`, gone after `ttl` when given.
pub fn set_with_ttl(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error> {
    let (key, value) = (Block::new(key.as_bytes())?, Block::new(value)?);
    // SAFETY: as in `get`.
    unsafe { kv_set(key.offset(), value.offset(), ttl_ms(ttl)) };
    Ok(())
}

/// Removes `key`; true when it was there.
pub fn delete(key: &str) -> Result<bool, Error> {
    let key = Block::new(key.as_bytes())?;
    // SAFETY: as in `get`.
    Ok(unsafe { kv_delete(key.offset()) } == 1)
}

/// Keys starting with `prefix`, in byte order, after `after` when given: one page of at
/// most the host's `max_list_keys`; ask again from the last key for the next.
pub fn list(prefix: &str, after: Option<&str>) -> Result<Vec<String>, Error> {
    let prefix = Block::new(prefix.as_bytes())?;
    let after = Block::optional(after.map(str::as_bytes))?;
    // SAFETY: as in `get`.
    let offset = unsafe { kv_list(prefix.offset(), offset_or_none(&after)) };
    serde_json::from_slice(&take(offset)).map_err(|err| Error::msg(format!("kv list: {err}")))
}

/// Stores `value` (removes the entry for `None`) only if the entry is still `expected`
/// (`None`: absent); true when it was. Two calls racing on one key cannot both win.
pub fn compare_and_set(
    key: &str,
    expected: Option<&[u8]>,
    value: Option<&[u8]>,
    ttl: Option<Duration>,
) -> Result<bool, Error> {
    let key = Block::new(key.as_bytes())?;
    let expected = Block::optional(expected)?;
    let value = Block::optional(value)?;
    // SAFETY: as in `get`.
    let applied = unsafe {
        kv_compare_and_set(
            key.offset(),
            offset_or_none(&expected),
            offset_or_none(&value),
            ttl_ms(ttl),
        )
    };
    Ok(applied == 1)
}

/// Replaces the entry under `key` with what `change` makes of it (`None` removes it),
/// retrying with compare-and-set until no other call changed it in between; returns the
/// value written.
pub fn update(
    key: &str,
    mut change: impl FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
) -> Result<Option<Vec<u8>>, Error> {
    loop {
        let current = get(key)?;
        let next = change(current.as_deref());
        if compare_and_set(key, current.as_deref(), next.as_deref(), None)? {
            return Ok(next);
        }
    }
}
