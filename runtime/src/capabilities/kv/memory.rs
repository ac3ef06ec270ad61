//! The `memory` key-value backend: one ordered map per store, in this process only, for
//! tests and for hosts that want state to last exactly as long as the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::{Expect, KvStore, Moment, Put, Quota, Scope, TenantUsage, Write};
use crate::error::{Error, ErrorKind, Result};

/// `(tenant, pack, key)`: the scope is part of the map key, never of the key text.
type EntryKey = (String, String, String);

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expires_at_ms: Option<u64>,
}

impl Entry {
    fn live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|at| at > now_ms)
    }
}

#[derive(Debug, Default)]
struct Maps {
    entries: BTreeMap<EntryKey, Entry>,
    tenants: HashMap<String, TenantUsage>,
}

/// An in-process store; one lock around both maps makes every write atomic.
#[derive(Debug, Default)]
pub(crate) struct MemoryStore {
    maps: Mutex<Maps>,
}

fn entry_key(scope: Scope<'_>, key: &str) -> EntryKey {
    (
        scope.tenant.to_string(),
        scope.pack.to_string(),
        key.to_string(),
    )
}

fn entry_bytes(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl MemoryStore {
    fn maps(&self) -> Result<std::sync::MutexGuard<'_, Maps>> {
        self.maps
            .lock()
            .map_err(|_| Error::new(ErrorKind::Internal, "memory kv store poisoned"))
    }
}

impl Maps {
    /// Drops the tenant's entries that have expired, giving their bytes back. Only the
    /// tenant's own range of the map is visited.
    fn sweep(&mut self, tenant: &str, now_ms: u64) {
        let start = (tenant.to_string(), String::new(), String::new());
        let expired: Vec<EntryKey> = self
            .entries
            .range(start..)
            .take_while(|((owner, _, _), _)| owner == tenant)
            .filter(|(_, entry)| !entry.live(now_ms))
            .map(|(id, _)| id.clone())
            .collect();
        let usage = self.tenants.entry(tenant.to_string()).or_default();
        for id in expired {
            if let Some(entry) = self.entries.remove(&id) {
                usage.bytes -= entry_bytes(&id.2, &entry.value).min(usage.bytes);
                usage.keys -= 1.min(usage.keys);
            }
        }
    }
}

impl KvStore for MemoryStore {
    fn get(&self, scope: Scope<'_>, key: &str, at: Moment) -> Result<Option<Vec<u8>>> {
        let maps = self.maps()?;
        Ok(maps
            .entries
            .get(&entry_key(scope, key))
            .filter(|entry| entry.live(at.now_ms))
            .map(|entry| entry.value.clone()))
    }

    fn put(&self, scope: Scope<'_>, write: Write<'_>, quota: &Quota, at: Moment) -> Result<Put> {
        let mut maps = self.maps()?;
        let id = entry_key(scope, write.key);
        let current = maps.entries.get(&id);
        let live = current.filter(|entry| entry.live(at.now_ms));
        let existed = live.is_some();
        let holds = match write.expect {
            Expect::Any => true,
            Expect::Absent => live.is_none(),
            Expect::Value(bytes) => live.is_some_and(|entry| entry.value == bytes),
        };
        if !holds {
            return Ok(Put {
                applied: false,
                existed,
            });
        }
        // An expired entry still counts until it is replaced or swept.
        let old = current.map(|entry| entry_bytes(write.key, &entry.value));
        let new = write.value.map(|value| entry_bytes(write.key, value));
        let usage = maps.tenants.get(scope.tenant).copied().unwrap_or_default();
        let usage = match usage.replace(old, new, quota) {
            Ok(usage) => usage,
            Err(_) => {
                maps.sweep(scope.tenant, at.now_ms);
                let old = maps
                    .entries
                    .get(&id)
                    .map(|entry| entry_bytes(write.key, &entry.value));
                let usage = maps.tenants.get(scope.tenant).copied().unwrap_or_default();
                usage.replace(old, new, quota)?
            }
        };
        maps.tenants.insert(scope.tenant.to_string(), usage);
        match write.value {
            Some(value) => {
                maps.entries.insert(
                    id,
                    Entry {
                        value: value.to_vec(),
                        expires_at_ms: write.expires_at_ms,
                    },
                );
            }
            None => {
                maps.entries.remove(&id);
            }
        }
        Ok(Put {
            applied: true,
            existed,
        })
    }

    fn list(
        &self,
        scope: Scope<'_>,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        at: Moment,
    ) -> Result<Vec<String>> {
        let maps = self.maps()?;
        let start = entry_key(scope, after.map_or(prefix, |after| after.max(prefix)));
        Ok(maps
            .entries
            .range(start..)
            .take_while(|((tenant, pack, key), _)| {
                tenant == scope.tenant && pack == scope.pack && key.starts_with(prefix)
            })
            .filter(|((_, _, key), entry)| {
                entry.live(at.now_ms) && after.is_none_or(|after| key.as_str() > after)
            })
            .take(limit)
            .map(|((_, _, key), _)| key.clone())
            .collect())
    }
}
