//! The audit trail: every use of a capability during a call (an HTTP request, a key-value
//! operation, a secret read, a host-function call), refusals included, in the order they
//! happened. Each capability records its own entries here, once for both engines; the call
//! returns them with its report, and `Pack` emits them to `tracing` and any sink.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

/// Most entries one call keeps; later ones are only counted (a last entry says how many), so
/// a pack calling a host function in a loop cannot make the host hold an unbounded trail.
pub const MAX_AUDIT_ENTRIES: usize = 10_000;

/// Which capability an entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// An HTTP request (`http_request`).
    Http,
    /// A key-value operation (`packhost:host/kv`).
    Kv,
    /// A secret read (`packhost:host/secrets`).
    Secret,
    /// A call of a function the host lent.
    HostFunction,
    /// The trail itself: its last entry when entries past [`MAX_AUDIT_ENTRIES`] were
    /// counted, not kept (operation `truncated`, the count in `reason`).
    Audit,
}

/// How a use ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// It was allowed and done.
    Ok,
    /// A grant or a quota refused it (`host_denied`, `quota_exceeded`).
    Denied,
    /// It was allowed and failed (a host function's error, a backend's, a timeout).
    Failed,
}

/// One use of a capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The capability used.
    pub capability: Capability,
    /// What was done: the HTTP method; `get`, `set`, `delete`, `list` or
    /// `compare_and_set`; `read` for a secret; `call` for a host function.
    pub operation: String,
    /// What it was done to: the HTTP host; the key (a `list`'s prefix); the secret's name
    /// (never its value); the host function's name. Empty when the pack's request could not
    /// be read.
    pub target: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The HTTP response's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Bytes the pack sent: an HTTP request body, a value written.
    #[serde(default)]
    pub bytes_sent: u64,
    /// Bytes the pack received: an HTTP response body, a value read.
    #[serde(default)]
    pub bytes_received: u64,
    /// Why it was refused or failed (the error's code and message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How much of a name the pack chose (a secret's, a host function's) a refusal repeats and
/// an audit entry keeps: the pack may make it any length, and the host holds on to both.
const MAX_NAME_EXCERPT_CHARS: usize = 128;

/// The start of `name`, as refusals and audit entries keep it.
pub(crate) fn name_excerpt(name: &str) -> String {
    name.chars().take(MAX_NAME_EXCERPT_CHARS).collect()
}

impl AuditEntry {
    /// An entry for `operation` of `capability` on `target`, to be settled by [`AuditEntry::ended`].
    pub(crate) fn new(
        capability: Capability,
        operation: impl Into<String>,
        target: impl Into<String>,
    ) -> Self {
        AuditEntry {
            capability,
            operation: operation.into(),
            target: target.into(),
            outcome: AuditOutcome::Ok,
            status: None,
            bytes_sent: 0,
            bytes_received: 0,
            reason: None,
        }
    }

    /// Settles the entry from how the use ended.
    pub(crate) fn ended<T>(mut self, result: &Result<T, Error>) -> Self {
        if let Err(err) = result {
            self.outcome = match err.kind() {
                ErrorKind::HostDenied | ErrorKind::QuotaExceeded => AuditOutcome::Denied,
                _ => AuditOutcome::Failed,
            };
            self.reason = Some(format!("{}: {}", err.code(), err.message()));
        }
        self
    }
}

/// One instance's trail for the call in progress, shared by the places that record into it
/// (on the extism engine, HTTP and host functions keep separate state).
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditTrail(Arc<Mutex<Trail>>);

#[derive(Debug, Default)]
struct Trail {
    entries: Vec<AuditEntry>,
    dropped: u64,
    http: HttpTotals,
}

/// The HTTP a call made, counted from every entry, kept or not: what its usage bills.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HttpTotals {
    pub(crate) requests: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
}

impl AuditTrail {
    /// Appends `entry`, or counts it when the call's trail is full.
    pub(crate) fn record(&self, entry: AuditEntry) {
        if let Ok(mut trail) = self.0.lock() {
            if entry.capability == Capability::Http {
                let http = &mut trail.http;
                http.requests += 1;
                http.bytes_sent = http.bytes_sent.saturating_add(entry.bytes_sent);
                http.bytes_received = http.bytes_received.saturating_add(entry.bytes_received);
            }
            if trail.entries.len() < MAX_AUDIT_ENTRIES {
                trail.entries.push(entry);
            } else {
                trail.dropped += 1;
            }
        }
    }

    /// The call's entries and HTTP totals, leaving the trail empty for the next call. When
    /// entries were dropped, a last entry (capability `audit`) says how many.
    pub(crate) fn take(&self) -> (Vec<AuditEntry>, HttpTotals) {
        let Ok(mut trail) = self.0.lock() else {
            return Default::default();
        };
        let dropped = std::mem::take(&mut trail.dropped);
        let mut entries = std::mem::take(&mut trail.entries);
        if dropped > 0 {
            let mut note = AuditEntry::new(Capability::Audit, "truncated", "");
            note.outcome = AuditOutcome::Failed;
            note.reason = Some(format!(
                "the trail keeps {MAX_AUDIT_ENTRIES} entries per call; {dropped} later ones were counted, not kept"
            ));
            entries.push(note);
        }
        (entries, std::mem::take(&mut trail.http))
    }
}
