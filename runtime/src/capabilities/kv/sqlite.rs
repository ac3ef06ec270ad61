//! The `sqlite` key-value backend, the embedded durable default: one SQLite file in WAL
//! mode, which several processes of one application (gunicorn, Puma or Node cluster
//! workers) may open at once. Every write is one `BEGIN IMMEDIATE` transaction, so two
//! processes racing on a compare-and-set are serialised by SQLite's write lock, and a write
//! whose call returned is in the WAL, where a killed process cannot lose it.

use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::{backend_failed, Expect, KvStore, Moment, Put, Quota, Scope, TenantUsage, Write};
use crate::error::{Error, ErrorKind, Result};

/// Longest a write waits for another process's lock when the call has no deadline.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Idle connections kept for the next operation; more are opened under contention.
const IDLE_CONNECTIONS: usize = 8;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS packhost_kv (
    tenant TEXT NOT NULL,
    pack TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    expires_at_ms INTEGER,
    PRIMARY KEY (tenant, pack, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS packhost_kv_expiring
    ON packhost_kv (tenant, expires_at_ms) WHERE expires_at_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS packhost_kv_tenants (
    tenant TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL,
    keys INTEGER NOT NULL
) WITHOUT ROWID;
";

/// A database file and a few open connections to it.
pub(crate) struct SqliteStore {
    path: String,
    idle: Mutex<Vec<Connection>>,
}

fn failed(err: impl std::fmt::Display) -> Error {
    backend_failed("sqlite", err)
}

/// A busy database past the call's deadline is the call's timeout, not a storage fault.
fn classify(err: rusqlite::Error, at: &Moment) -> Error {
    let busy = matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    if busy && at.remaining(LOCK_WAIT).is_zero() {
        return Error::new(
            ErrorKind::Timeout,
            "the call ran past its time limit waiting for the kv store",
        );
    }
    failed(err)
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `path` and its tables.
    ///
    /// # Errors
    /// `invalid_options` without a path; `io` when the file cannot be opened or set up.
    pub(crate) fn open(path: &str) -> Result<Self> {
        if path.is_empty() {
            return Err(Error::invalid_options(
                "kv.path: the sqlite backend needs the database file's path",
            ));
        }
        // The file holds every tenant's data: created private, as the usage logs are.
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
            if let Err(err) = created {
                if err.kind() != std::io::ErrorKind::AlreadyExists {
                    return Err(failed(format!("{path}: {err}")));
                }
            }
        }
        let store = SqliteStore {
            path: path.to_string(),
            idle: Mutex::new(Vec::new()),
        };
        let connection = store.connect(LOCK_WAIT)?;
        connection.execute_batch(SCHEMA).map_err(failed)?;
        store.give_back(connection);
        Ok(store)
    }

    /// Opens one more connection, waiting at most `wait` for another process's lock.
    fn connect(&self, wait: Duration) -> Result<Connection> {
        let connection =
            Connection::open(&self.path).map_err(|err| failed(format!("{}: {err}", self.path)))?;
        connection.busy_timeout(wait).map_err(failed)?;
        // WAL: readers never block the writer, and other processes see each commit.
        // synchronous=NORMAL: a commit is in the WAL before it returns, which survives the
        // process being killed; only a power cut can lose the last commits.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(failed)?;
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(failed)?;
        Ok(connection)
    }

    /// Runs `work` on an idle connection (or a new one), waiting for locks no longer than
    /// the call may.
    fn with_connection<R>(
        &self,
        at: &Moment,
        work: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Result<R> {
        let wait = at.remaining(LOCK_WAIT);
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match idle {
            Some(connection) => connection,
            None => self.connect(wait)?,
        };
        connection.busy_timeout(wait).map_err(failed)?;
        let result = work(&connection).map_err(|err| classify(err, at));
        self.give_back(connection);
        result
    }

    fn give_back(&self, connection: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(connection);
            }
        }
    }
}

fn live(expires_at_ms: Option<i64>, now_ms: u64) -> bool {
    expires_at_ms.is_none_or(|at| at > now_ms as i64)
}

fn tenant_usage(connection: &Connection, tenant: &str) -> rusqlite::Result<TenantUsage> {
    let row = connection
        .prepare_cached("SELECT bytes, keys FROM packhost_kv_tenants WHERE tenant = ?1")?
        .query_row(params![tenant], |row| {
            Ok(TenantUsage {
                bytes: row.get::<_, i64>(0)? as u64,
                keys: row.get::<_, i64>(1)? as u64,
            })
        })
        .optional()?;
    Ok(row.unwrap_or_default())
}

/// Drops the tenant's expired entries and gives their bytes back.
fn sweep(connection: &Connection, tenant: &str, now_ms: u64) -> rusqlite::Result<()> {
    let (bytes, keys): (i64, i64) = connection
        .prepare_cached(
            "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(value)), 0), COUNT(*)
             FROM packhost_kv WHERE tenant = ?1 AND expires_at_ms <= ?2",
        )?
        .query_row(params![tenant, now_ms as i64], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    if keys > 0 {
        connection
            .prepare_cached("DELETE FROM packhost_kv WHERE tenant = ?1 AND expires_at_ms <= ?2")?
            .execute(params![tenant, now_ms as i64])?;
        connection
            .prepare_cached(
            "UPDATE packhost_kv_tenants SET bytes = max(bytes - ?2, 0), keys = max(keys - ?3, 0)
             WHERE tenant = ?1",
        )?
        .execute(params![tenant, bytes, keys])?;
    }
    Ok(())
}

/// The outcome of a write inside its transaction: a quota refusal rolls it back.
enum Attempt {
    Done(Put),
    OverQuota(Error),
}

/// What a write finds before it decides: the entry it would replace and the tenant's
/// figures.
struct Found {
    /// The entry's bytes (key plus value), whether or not it is still live.
    entry: Option<u64>,
    expires_at_ms: Option<i64>,
    /// The entry holds exactly the expected bytes of a compare-and-set.
    equal: bool,
    usage: TenantUsage,
}

/// A `BEGIN IMMEDIATE` transaction on statements SQLite keeps prepared: rusqlite's own
/// transactions parse `BEGIN` and `COMMIT` afresh each time, a measurable share of a write
/// that BENCHMARKS.md holds within 2x of a plain upsert. Dropped uncommitted, it rolls back.
struct ImmediateTransaction<'c> {
    connection: &'c Connection,
}

impl<'c> ImmediateTransaction<'c> {
    fn begin(connection: &'c Connection) -> rusqlite::Result<Self> {
        connection.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(ImmediateTransaction { connection })
    }

    fn commit(self) -> rusqlite::Result<()> {
        self.connection.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }
}

impl Drop for ImmediateTransaction<'_> {
    fn drop(&mut self) {
        // After a commit SQLite is back in autocommit mode; anything else is an unfinished
        // transaction, which must not stay open on a pooled connection.
        if !self.connection.is_autocommit() {
            let _ = self.connection.execute_batch("ROLLBACK");
        }
    }
}

fn entry_bytes(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl KvStore for SqliteStore {
    fn get(&self, scope: Scope<'_>, key: &str, at: Moment) -> Result<Option<Vec<u8>>> {
        self.with_connection(&at, |connection| {
            let row = connection
                .prepare_cached(
                    "SELECT value, expires_at_ms FROM packhost_kv
                     WHERE tenant = ?1 AND pack = ?2 AND key = ?3",
                )?
                .query_row(params![scope.tenant, scope.pack, key], |row| {
                    Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Option<i64>>(1)?))
                })
                .optional()?;
            Ok(row
                .filter(|(_, expires)| live(*expires, at.now_ms))
                .map(|(value, _)| value))
        })
    }

    fn put(&self, scope: Scope<'_>, write: Write<'_>, quota: &Quota, at: Moment) -> Result<Put> {
        let attempt = self.with_connection(&at, |connection| {
            let tx = ImmediateTransaction::begin(connection)?;
            // One lookup for the entry and the tenant's figures; the entry's value is
            // compared in SQL and never copied out, so a set costs the same whatever the
            // size of the value it replaces.
            let expected = match write.expect {
                Expect::Value(bytes) => Some(bytes),
                Expect::Any | Expect::Absent => None,
            };
            let found: Found = connection
                .prepare_cached(
                    "SELECT e.expires_at_ms, length(e.value), e.value = ?4,
                            t.bytes, t.keys
                     FROM (SELECT 1)
                     LEFT JOIN packhost_kv AS e
                         ON e.tenant = ?1 AND e.pack = ?2 AND e.key = ?3
                     LEFT JOIN packhost_kv_tenants AS t ON t.tenant = ?1",
                )?
                .query_row(
                    params![scope.tenant, scope.pack, write.key, expected],
                    |row| {
                        let value_bytes: Option<i64> = row.get(1)?;
                        Ok(Found {
                            entry: value_bytes.map(|bytes| bytes as u64 + write.key.len() as u64),
                            expires_at_ms: row.get(0)?,
                            equal: row.get::<_, Option<bool>>(2)?.unwrap_or(false),
                            usage: TenantUsage {
                                bytes: row.get::<_, Option<i64>>(3)?.unwrap_or(0) as u64,
                                keys: row.get::<_, Option<i64>>(4)?.unwrap_or(0) as u64,
                            },
                        })
                    },
                )?;
            let existed = found.entry.is_some() && live(found.expires_at_ms, at.now_ms);
            let holds = match write.expect {
                Expect::Any => true,
                Expect::Absent => !existed,
                Expect::Value(_) => existed && found.equal,
            };
            if !holds {
                return Ok(Attempt::Done(Put {
                    applied: false,
                    existed,
                }));
            }
            let new = write.value.map(|value| entry_bytes(write.key, value));
            let mut old = found.entry;
            let mut before = found.usage;
            let mut usage = before.replace(old, new, quota);
            if usage.is_err() {
                sweep(connection, scope.tenant, at.now_ms)?;
                // The sweep may have taken the replaced entry itself.
                if !existed {
                    old = None;
                }
                before = tenant_usage(connection, scope.tenant)?;
                usage = before.replace(old, new, quota);
            }
            let usage = match usage {
                Ok(usage) => usage,
                Err(err) => return Ok(Attempt::OverQuota(err)),
            };
            match write.value {
                Some(value) => {
                    connection
                        .prepare_cached(
                            "INSERT INTO packhost_kv (tenant, pack, key, value, expires_at_ms)
                             VALUES (?1, ?2, ?3, ?4, ?5)
                             ON CONFLICT (tenant, pack, key)
                             DO UPDATE SET value = excluded.value,
                                           expires_at_ms = excluded.expires_at_ms",
                        )?
                        .execute(params![
                            scope.tenant,
                            scope.pack,
                            write.key,
                            value,
                            write.expires_at_ms.map(|at| at as i64)
                        ])?;
                }
                None => {
                    connection
                        .prepare_cached(
                            "DELETE FROM packhost_kv WHERE tenant = ?1 AND pack = ?2 AND key = ?3",
                        )?
                        .execute(params![scope.tenant, scope.pack, write.key])?;
                }
            }
            if usage != before {
                connection
                    .prepare_cached(
                        "INSERT INTO packhost_kv_tenants (tenant, bytes, keys) VALUES (?1, ?2, ?3)
                         ON CONFLICT (tenant) DO UPDATE SET bytes = excluded.bytes,
                                                            keys = excluded.keys",
                    )?
                    .execute(params![scope.tenant, usage.bytes as i64, usage.keys as i64])?;
            }
            tx.commit()?;
            Ok(Attempt::Done(Put {
                applied: true,
                existed,
            }))
        })?;
        match attempt {
            Attempt::Done(put) => Ok(put),
            Attempt::OverQuota(err) => Err(err),
        }
    }

    fn list(
        &self,
        scope: Scope<'_>,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        at: Moment,
    ) -> Result<Vec<String>> {
        self.with_connection(&at, |connection| {
            // Keys compare as text in byte order (SQLite's BINARY collation), so the prefix
            // is a range: no LIKE, whose wildcards a key could carry.
            let start = after.map_or(prefix, |after| after.max(prefix));
            let mut statement = connection.prepare_cached(
                "SELECT key, expires_at_ms FROM packhost_kv
                 WHERE tenant = ?1 AND pack = ?2 AND key >= ?3
                 ORDER BY key",
            )?;
            let mut rows = statement.query(params![scope.tenant, scope.pack, start])?;
            let mut keys = Vec::new();
            while let Some(row) = rows.next()? {
                let key: String = row.get(0)?;
                if !key.starts_with(prefix) || keys.len() >= limit {
                    break;
                }
                if after.is_some_and(|after| key.as_str() <= after) {
                    continue;
                }
                if live(row.get(1)?, at.now_ms) {
                    keys.push(key);
                }
            }
            Ok(keys)
        })
    }
}
