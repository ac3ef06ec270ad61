//! Vars: the Extism ABI's per-instance store (`var_get`/`var_set`), kept by packhost on both
//! engines so that one cap (`limits.max_var_bytes`) and one count hold everywhere.
//!
//! A var lives as long as its instance: across calls under `isolation: "pack"`, never past
//! a renewal. As in Extism, `var_get` and `var_set` free the blocks the pack hands them. Its key and value bytes count against `limits.max_var_bytes` (what Extism's
//! `memory.max_var_bytes` caps) and, with every other byte a pack makes the host hold,
//! against `limits.memory_bytes`; the engine supplies that second account.

use std::collections::HashMap;

use crate::error::{Error, ErrorKind, Result};

/// One instance's vars and the bytes they hold.
#[derive(Debug, Default)]
pub(crate) struct Vars {
    entries: HashMap<String, Vec<u8>>,
    bytes: u64,
    max_bytes: u64,
}

/// Moves var bytes in an engine's memory account: releases the first number, then claims
/// the second, or claims nothing (and keeps the first) when the limit would break.
pub(crate) trait MemoryAccount {
    /// Swaps `release` held bytes for `claim`; false (and nothing changed) when the claim
    /// does not fit.
    fn swap(&mut self, release: u64, claim: u64) -> bool;
    /// The memory limit, for the error message.
    fn limit(&self) -> u64;
}

impl Vars {
    /// No vars yet, at most `max_bytes` of keys and values.
    pub(crate) fn new(max_bytes: u64) -> Self {
        Vars {
            max_bytes,
            ..Vars::default()
        }
    }

    /// The value of `key`, if set.
    pub(crate) fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    /// Bytes of keys and values held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Sets `key` to `value` (`None` removes it) within `max_var_bytes` and the memory
    /// limit `account` keeps.
    ///
    /// # Errors
    /// `trap` past `max_var_bytes` (Extism fails the call there too); `memory_limit` past
    /// the memory limit.
    pub(crate) fn set(
        &mut self,
        key: String,
        value: Option<Vec<u8>>,
        account: &mut dyn MemoryAccount,
    ) -> Result<()> {
        if self.max_bytes == 0 {
            // As in Extism: a cap of 0 turns vars off.
            return Err(Error::new(
                ErrorKind::Trap,
                "vars are disabled (limits.max_var_bytes is 0)",
            ));
        }
        let entry_bytes = |value: &Vec<u8>| (key.len() + value.len()) as u64;
        let old = self.entries.get(&key).map_or(0, entry_bytes);
        let new = value.as_ref().map_or(0, entry_bytes);
        let total = self.bytes - old + new;
        if total > self.max_bytes {
            return Err(Error::new(
                ErrorKind::Trap,
                format!(
                    "vars would hold {total} bytes, past limits.max_var_bytes ({})",
                    self.max_bytes
                ),
            ));
        }
        if !account.swap(old, new) {
            return Err(Error::new(
                ErrorKind::MemoryLimit,
                format!(
                    "vars would take the pack past its {} byte memory limit",
                    account.limit()
                ),
            ));
        }
        self.bytes = total;
        match value {
            Some(value) => self.entries.insert(key, value),
            None => self.entries.remove(&key),
        };
        Ok(())
    }

    /// Drops every var, returning the bytes they held.
    pub(crate) fn clear(&mut self) -> u64 {
        self.entries.clear();
        std::mem::take(&mut self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An account with `room` bytes.
    struct Room {
        held: u64,
        limit: u64,
    }

    impl MemoryAccount for Room {
        fn swap(&mut self, release: u64, claim: u64) -> bool {
            let after = self.held - release + claim;
            if after > self.limit {
                return false;
            }
            self.held = after;
            true
        }
        fn limit(&self) -> u64 {
            self.limit
        }
    }

    #[test]
    fn a_replaced_value_gives_its_bytes_back_and_both_caps_hold() {
        let mut vars = Vars::new(10);
        let mut room = Room {
            held: 0,
            limit: 1000,
        };
        vars.set("k".into(), Some(vec![0; 9]), &mut room).unwrap();
        // Replacing counts the new value only (Extism would count both).
        vars.set("k".into(), Some(vec![1; 9]), &mut room).unwrap();
        assert_eq!((vars.bytes(), room.held), (10, 10));
        let err = vars.set("j".into(), Some(vec![]), &mut room).unwrap_err();
        assert_eq!(err.code(), "trap");
        assert!(err.message().contains("max_var_bytes"), "{err}");
        vars.set("k".into(), None, &mut room).unwrap();
        assert_eq!((vars.bytes(), room.held, vars.get("k")), (0, 0, None));

        let err = Vars::new(0)
            .set(String::new(), None, &mut room)
            .unwrap_err();
        assert!(err.message().contains("disabled"), "{err}");

        let mut tight = Room { held: 0, limit: 4 };
        let err = vars
            .set("k".into(), Some(vec![0; 5]), &mut tight)
            .unwrap_err();
        assert_eq!(err.code(), "memory_limit");
        assert_eq!((vars.bytes(), tight.held), (0, 0));
    }
}
