//! The hostile pack: every way a plugin can misbehave, so tests can show the host survives
//! each one and the next call still works. Never load it outside tests.

use packhost_pdk::prelude::*;

/// Loops forever; only the timeout (or fuel) stops it.
#[action]
fn spin() -> Result<(), Error> {
    let mut counter: u64 = 0;
    loop {
        // A volatile read keeps the optimiser from proving the loop has no effect.
        counter = unsafe { std::ptr::read_volatile(&counter) }.wrapping_add(1);
    }
}

/// Allocates 1 MiB blocks and keeps them until memory runs out.
#[action]
fn memory_bomb() -> Result<usize, Error> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        block[0] = blocks.len() as u8;
        blocks.push(block);
        if blocks.len() == usize::MAX {
            return Ok(blocks.len());
        }
    }
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn descend(depth: u64, trail: &mut [u64; 64]) -> u64 {
    trail[(depth % 64) as usize] = depth;
    // Each frame keeps a buffer alive across the recursive call, so the stack really grows.
    let frame = std::hint::black_box([depth; 32]);
    descend(depth + 1, trail) + frame[(depth % 32) as usize]
}

/// Recurses without end until the stack overflows.
#[action]
fn recurse() -> Result<u64, Error> {
    let mut trail = [0u64; 64];
    Ok(descend(0, &mut trail))
}

/// Executes `unreachable` (a Rust panic aborts the same way).
#[action]
fn trap() -> Result<(), Error> {
    std::process::abort()
}

/// How much output to produce.
#[derive(Deserialize, JsonSchema)]
struct Size {
    bytes: usize,
}

/// Returns `bytes` bytes of `x`.
#[action]
fn big_output(input: Size) -> Result<Vec<u8>, Error> {
    Ok(vec![b'x'; input.bytes])
}

/// A URL to fetch.
#[derive(Deserialize, JsonSchema)]
struct Fetch {
    url: String,
}

/// What came back.
#[derive(Serialize, JsonSchema)]
struct Fetched {
    status: u16,
    body: String,
}

/// Fetches a URL with GET; the host must have granted its host.
#[action]
fn fetch(input: Fetch) -> Result<Fetched, Error> {
    let request = HttpRequest::new(&input.url);
    let response = packhost_pdk::extism_pdk::http::request::<String>(&request, None)?;
    Ok(Fetched {
        status: response.status_code(),
        body: String::from_utf8_lossy(&response.body()).into_owned(),
    })
}

/// How much CPU work to do.
#[derive(Deserialize, JsonSchema)]
struct Work {
    rounds: u64,
}

/// Does `rounds` rounds of integer hashing and returns the result: deterministic CPU work
/// for fuel and threading tests. The result is cut to 53 bits so every JSON reader, the
/// JavaScript one included, reads the same number.
#[action]
fn busy(input: Work) -> Result<u64, Error> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..input.rounds {
        state ^= round;
        state = state.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        state ^= state >> 31;
    }
    Ok(state >> 11)
}

/// The input of the last call this instance served, kept in linear memory.
static LAST_INPUT: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// Keeps its input in linear memory and in a var, and returns what the previous call on
/// the same instance left in both, as `memory|var`: what one caller could learn of another
/// when calls share an instance.
#[action]
fn remember(input: String) -> Result<String, Error> {
    let from_var = packhost_pdk::extism_pdk::var::get::<String>("last")?.unwrap_or_default();
    packhost_pdk::extism_pdk::var::set("last", &input)?;
    let mut last = LAST_INPUT.lock().unwrap_or_else(|e| e.into_inner());
    let from_memory = std::mem::replace(&mut *last, input);
    Ok(format!("{from_memory}|{from_var}"))
}

/// Writes 64 KiB values under new keys until the host refuses: the tenant's quota must.
#[action]
fn kv_flood() -> Result<(), Error> {
    let value = vec![b'x'; 64 << 10];
    for index in 0u64.. {
        packhost_pdk::kv::set(&format!("flood/{index}"), &value)?;
    }
    Ok(())
}

/// Reads one key forever: the operations per call must run out.
#[action]
fn kv_chatter() -> Result<(), Error> {
    loop {
        packhost_pdk::kv::get("chatter")?;
    }
}

/// Reads each input key and returns what it found: with keys shaped like another tenant's
/// or another pack's entries (separators, JSON, NUL bytes), it must find nothing of theirs.
#[action]
fn kv_snoop(keys: Vec<String>) -> Result<Vec<Option<String>>, Error> {
    keys.iter()
        .map(|key| {
            let found = packhost_pdk::kv::get(key)?;
            Ok(found.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
        })
        .collect()
}

/// Reads the secret named by the input, logs it and fails with it in the error message:
/// the host must see both with the value redacted.
#[action]
fn leak_secret(name: String) -> Result<(), Error> {
    let value = packhost_pdk::secret(&name)?;
    packhost_pdk::extism_pdk::info!("the {name} is {value}");
    Err(fail(format!("leaking {name}={value}!")))
}

packhost_pdk::pack! {
    actions: [spin, memory_bomb, recurse, trap, big_output, fetch, busy, remember, kv_flood, kv_chatter, kv_snoop, leak_secret],
    // It asks for every address a pack could use against its host's network; the host's
    // grant and address rules must stop it (runtime/tests/http.rs, the conformance cases).
    http_hosts: ["*.example.com", "127.0.0.1", "localhost", "169.254.169.254", "10.1.2.3"],
    kv: true,
    secrets: ["api_key", "missing_key"],
}
