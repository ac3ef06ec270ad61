//! packhost-redis: the `redis` backend of packhost's key-value storage, for applications
//! that run on many machines. Call [`register`] once at start-up, then load packs with
//! `{"kv": {"backend": "redis", "url": "redis://host:6379/0"}}`.
//!
//! Each write is one Lua script, so its expectation check, quota check and update are
//! atomic on the server, whatever number of hosts race on a key. Entries of a scope live in
//! three Redis keys (values, expiries, a lexical index for listing by prefix) and each
//! tenant's figures in one more; all of a tenant's keys share a hash tag, so a script's keys
//! sit in one Redis Cluster slot. `kv.path`, when set, prefixes every key: several stores
//! can share one server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use packhost::{
    backend_failed, quota_exceeded, Error, ErrorKind, Expect, KvOptions, KvStore, Moment, Put,
    Quota, Result, Scope, Write,
};
use redis::{Connection, Script};

/// The Redis client this backend is built on, for hosts that talk to the same server.
pub use redis;

/// Longest an operation waits for the server when the call has no deadline.
const SERVER_WAIT: Duration = Duration::from_secs(5);

/// Idle connections kept for the next operation; more are opened under contention.
const IDLE_CONNECTIONS: usize = 8;

/// Makes `"redis"` available as `kv.backend`.
pub fn register() {
    packhost::register_kv_backend("redis", open);
}

fn open(options: &KvOptions) -> Result<Arc<dyn KvStore>> {
    Ok(Arc::new(RedisStore::open(&options.url, &options.path)?))
}

/// A Redis server and a few open connections to it.
pub struct RedisStore {
    client: redis::Client,
    prefix: String,
    idle: Mutex<Vec<Connection>>,
    get: Script,
    put: Script,
    list: Script,
}

fn failed(err: impl std::fmt::Display) -> Error {
    backend_failed("redis", err)
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The Redis keys of a scope: values, expiries and the listing index, then the tenant's
/// figures. Tenant and pack are hex-encoded, so no name can run into another.
fn redis_keys(prefix: &str, scope: Scope<'_>) -> [String; 4] {
    let base = format!("{prefix}packhost:kv:{{{}}}", hex(scope.tenant));
    let pack = hex(scope.pack);
    [
        format!("{base}:{pack}:values"),
        format!("{base}:{pack}:expiries"),
        format!("{base}:{pack}:index"),
        format!("{base}:usage"),
    ]
}

impl RedisStore {
    /// Connects to the server at `url`, with every key under `prefix`.
    ///
    /// # Errors
    /// `invalid_options` for a missing or malformed URL; `io` when the server does not answer.
    pub fn open(url: &str, prefix: &str) -> Result<Self> {
        if url.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidOptions,
                "kv.url: the redis backend needs the server's URL",
            ));
        }
        let client = redis::Client::open(url).map_err(|err| {
            Error::new(ErrorKind::InvalidOptions, format!("kv.url {url:?}: {err}"))
        })?;
        let store = RedisStore {
            client,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}:")
            },
            idle: Mutex::new(Vec::new()),
            get: Script::new(GET),
            put: Script::new(PUT),
            list: Script::new(LIST),
        };
        let connection = store.connect(SERVER_WAIT)?;
        store.give_back(connection);
        Ok(store)
    }

    fn connect(&self, wait: Duration) -> Result<Connection> {
        self.client
            .get_connection_with_timeout(wait.max(Duration::from_millis(1)))
            .map_err(failed)
    }

    fn give_back(&self, connection: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(connection);
            }
        }
    }

    /// Runs `work` on an idle connection (or a new one), waiting no longer than the call may.
    /// A connection that failed is dropped, not reused.
    fn with_connection<R>(
        &self,
        at: &Moment,
        work: impl FnOnce(&mut Connection) -> redis::RedisResult<R>,
    ) -> Result<R> {
        let wait = at.remaining(SERVER_WAIT);
        if wait.is_zero() {
            return Err(timeout());
        }
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut connection = match idle {
            Some(connection) => connection,
            None => self.connect(wait)?,
        };
        connection.set_read_timeout(Some(wait)).map_err(failed)?;
        connection.set_write_timeout(Some(wait)).map_err(failed)?;
        match work(&mut connection) {
            Ok(value) => {
                self.give_back(connection);
                Ok(value)
            }
            Err(err) if err.is_timeout() && at.remaining(SERVER_WAIT).is_zero() => Err(timeout()),
            Err(err) => Err(failed(err)),
        }
    }
}

fn timeout() -> Error {
    Error::new(
        ErrorKind::Timeout,
        "the call ran past its time limit waiting for redis",
    )
}

/// KEYS: values, expiries. ARGV: key, now. The live value, or nil.
const GET: &str = r#"
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return nil end
local expires = redis.call('HGET', KEYS[2], ARGV[1])
if expires and tonumber(expires) <= tonumber(ARGV[2]) then return nil end
return value
"#;

/// KEYS: values, expiries, index, usage. ARGV: key, has value (1/0), value, expires at (''
/// for never), expectation (any/absent/value), expected, now, max bytes, max keys.
/// Returns {applied, existed}, or {-1, bytes} / {-2, keys} when over the quota.
const PUT: &str = r#"
local key, now = ARGV[1], tonumber(ARGV[7])
local function live_value(k)
  local value = redis.call('HGET', KEYS[1], k)
  if not value then return nil, nil end
  local expires = redis.call('HGET', KEYS[2], k)
  if expires and tonumber(expires) <= now then return nil, value end
  return value, value
end
local live, stored = live_value(key)
local existed = live and 1 or 0
local expect = ARGV[5]
if (expect == 'absent' and live) or (expect == 'value' and live ~= ARGV[6]) then
  return {0, existed}
end
local new = nil
if ARGV[2] == '1' then new = #key + #ARGV[3] end
local function figures()
  return tonumber(redis.call('HGET', KEYS[4], 'bytes') or '0'),
         tonumber(redis.call('HGET', KEYS[4], 'keys') or '0')
end
local function after(old, bytes, keys)
  local b = bytes - (old or 0) + (new or 0)
  local k = keys - (old and 1 or 0) + (new and 1 or 0)
  return b, k
end
local old = stored and (#key + #stored) or nil
local bytes, keys = figures()
local b, k = after(old, bytes, keys)
local max_bytes, max_keys = tonumber(ARGV[8]), tonumber(ARGV[9])
if (b > bytes and b > max_bytes) or (k > keys and k > max_keys) then
  -- Expired entries of this scope give their share back before the write is refused (of
  -- this scope only: a tenant's other packs' entries are swept when those packs write).
  local expiries = redis.call('HGETALL', KEYS[2])
  for i = 1, #expiries, 2 do
    local k2, at = expiries[i], tonumber(expiries[i + 1])
    if at <= now then
      local value = redis.call('HGET', KEYS[1], k2)
      if value then
        redis.call('HINCRBY', KEYS[4], 'bytes', -(#k2 + #value))
        redis.call('HINCRBY', KEYS[4], 'keys', -1)
      end
      redis.call('HDEL', KEYS[1], k2)
      redis.call('HDEL', KEYS[2], k2)
      redis.call('ZREM', KEYS[3], k2)
    end
  end
  stored = select(2, live_value(key))
  old = stored and (#key + #stored) or nil
  bytes, keys = figures()
  b, k = after(old, bytes, keys)
  if b > bytes and b > max_bytes then return {-1, b} end
  if k > keys and k > max_keys then return {-2, k} end
end
-- Only what changes is written: every write is also a line in the append-only file.
if new then
  redis.call('HSET', KEYS[1], key, ARGV[3])
  if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[2], key, ARGV[4])
  elseif stored then
    redis.call('HDEL', KEYS[2], key)
  end
  if not stored then redis.call('ZADD', KEYS[3], 0, key) end
elseif stored then
  redis.call('HDEL', KEYS[1], key)
  redis.call('HDEL', KEYS[2], key)
  redis.call('ZREM', KEYS[3], key)
end
if b ~= bytes or k ~= keys then
  redis.call('HSET', KEYS[4], 'bytes', b, 'keys', k)
end
return {1, existed}
"#;

/// KEYS: expiries, index. ARGV: prefix, the range's start (`[prefix` or `(after`, chosen in
/// Rust: Lua compares strings by locale, not by bytes), limit, now. Live keys in byte order.
const LIST: &str = r#"
local prefix, start, limit, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local found = {}
while #found < limit do
  local batch = redis.call('ZRANGEBYLEX', KEYS[2], start, '+', 'LIMIT', 0, 100)
  if #batch == 0 then return found end
  for _, key in ipairs(batch) do
    if string.sub(key, 1, #prefix) ~= prefix then return found end
    local expires = redis.call('HGET', KEYS[1], key)
    if not expires or tonumber(expires) > now then
      found[#found + 1] = key
      if #found >= limit then return found end
    end
    start = '(' .. key
  end
end
return found
"#;

impl KvStore for RedisStore {
    fn get(&self, scope: Scope<'_>, key: &str, at: Moment) -> Result<Option<Vec<u8>>> {
        let [values, expiries, ..] = redis_keys(&self.prefix, scope);
        self.with_connection(&at, |connection| {
            self.get
                .key(values)
                .key(expiries)
                .arg(key)
                .arg(at.now_ms)
                .invoke(connection)
        })
    }

    fn put(&self, scope: Scope<'_>, write: Write<'_>, quota: &Quota, at: Moment) -> Result<Put> {
        let [values, expiries, index, usage] = redis_keys(&self.prefix, scope);
        let (expect, expected): (&str, &[u8]) = match write.expect {
            Expect::Any => ("any", b""),
            Expect::Absent => ("absent", b""),
            Expect::Value(bytes) => ("value", bytes),
        };
        let (outcome, figure): (i64, i64) = self.with_connection(&at, |connection| {
            self.put
                .key(values)
                .key(expiries)
                .key(index)
                .key(usage)
                .arg(write.key)
                .arg(if write.value.is_some() { "1" } else { "0" })
                .arg(write.value.unwrap_or_default())
                .arg(
                    write
                        .expires_at_ms
                        .map(|at| at.to_string())
                        .unwrap_or_default(),
                )
                .arg(expect)
                .arg(expected)
                .arg(at.now_ms)
                .arg(quota.max_bytes)
                .arg(quota.max_keys)
                .invoke(connection)
        })?;
        match outcome {
            -1 => Err(quota_exceeded(format!(
                "the tenant would keep {figure} bytes; its quota is {}",
                quota.max_bytes
            ))),
            -2 => Err(quota_exceeded(format!(
                "the tenant would keep {figure} keys; its quota is {}",
                quota.max_keys
            ))),
            applied => Ok(Put {
                applied: applied == 1,
                existed: figure == 1,
            }),
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
        let [_, expiries, index, _] = redis_keys(&self.prefix, scope);
        let start = match after {
            Some(after) if after >= prefix => format!("({after}"),
            _ => format!("[{prefix}"),
        };
        self.with_connection(&at, |connection| {
            self.list
                .key(expiries)
                .key(index)
                .arg(prefix)
                .arg(start)
                .arg(limit)
                .arg(at.now_ms)
                .invoke(connection)
        })
    }
}

/// A private `redis-server` for tests and benchmarks: started on a free loopback port with
/// its files in a new temporary folder and append-only persistence fsynced on every write,
/// stopped (and its folder removed) when dropped. Needs `redis-server` on the `PATH`.
pub struct LocalServer {
    process: std::process::Child,
    port: u16,
    folder: std::path::PathBuf,
}

impl LocalServer {
    /// Starts the server and waits (at most ten seconds) until it answers; when its port was
    /// taken meanwhile (the server exits), again on another, three times at most.
    ///
    /// # Errors
    /// When `redis-server` cannot be started or does not answer in time.
    pub fn start() -> std::io::Result<LocalServer> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let folder = std::env::temp_dir().join(format!(
            "packhost-redis-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&folder)?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = packhost::testing::unused_loopback_port()?;
            let mut process = Self::spawn(port, &folder)?;
            match wait_until_it_answers(&mut process, port) {
                Ok(()) => {
                    return Ok(LocalServer {
                        process,
                        port,
                        folder,
                    })
                }
                // Not running (it could not bind the port): another port.
                Err(_) if attempts < 3 && matches!(process.try_wait(), Ok(Some(_))) => {}
                Err(err) => {
                    let _ = process.kill();
                    let _ = process.wait();
                    let _ = std::fs::remove_dir_all(&folder);
                    return Err(err);
                }
            }
        }
    }

    /// Kills the server with SIGKILL (no shutdown, no save) and starts it again on the same
    /// port and files: what survives is what its append-only file had.
    ///
    /// # Errors
    /// As [`LocalServer::start`].
    pub fn kill_and_restart(&mut self) -> std::io::Result<()> {
        self.process.kill()?;
        self.process.wait()?;
        self.process = Self::spawn(self.port, &self.folder)?;
        wait_until_it_answers(&mut self.process, self.port)
    }

    fn spawn(port: u16, folder: &std::path::Path) -> std::io::Result<std::process::Child> {
        std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(folder)
            .stdout(std::process::Stdio::null())
            .spawn()
    }

    /// Its URL, database 0.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// Waits until the server on `port` says it is `process` (`INFO server`'s `process_id`):
/// an answer from another process is another test's server on a port ours could not bind.
fn wait_until_it_answers(process: &mut std::process::Child, port: u16) -> std::io::Result<()> {
    let id = process.id();
    packhost::testing::wait_until_serving(process, "redis-server", port, || {
        server_process_id(port) == Some(id)
    })
}

/// The `process_id` the Redis server on `port` reports, if one answers.
fn server_process_id(port: u16) -> Option<u32> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream.write_all(b"INFO server\r\n").ok()?;
    // The section is about 1 KiB; read until the line is whole or the reply stops.
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while reply.len() < 64 * 1024 {
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&reply);
        if let Some((_, rest)) = text.split_once("process_id:") {
            if let Some((id, _)) = rest.split_once("\r\n") {
                return id.parse().ok();
            }
        }
    }
    None
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}
