//! What packhost's own test suites share across crates (hidden from the docs, not part of
//! the API): ports for the real servers they start, and the wait until one serves.

use std::net::{Ipv4Addr, TcpListener};
use std::process::Child;
use std::time::{Duration, Instant};

/// The lowest port [`unused_loopback_port`] picks: below it are well-known services.
const LOWEST_PICKED_PORT: u16 = 10_000;

/// Linux's first ephemeral port unless `/proc` says otherwise.
const DEFAULT_EPHEMERAL_START: u16 = 32_768;

/// A loopback TCP port nothing listens on now, for a server a test is about to start.
///
/// Picked at random *below* the kernel's ephemeral range. A port-0 pick comes from that
/// range, so between the probe closing and the server binding, any outgoing connection of
/// any test running alongside may take it as its source port, and the server fails to
/// start (or a test talks to somebody else's server); a rolling restart that rebinds the
/// same port meanwhile has the same hole. Below the range, only another explicit pick can
/// collide, at random among some 22,000 ports. Falls back to a port-0 pick when the range
/// leaves no room below it.
pub fn unused_loopback_port() -> std::io::Result<u16> {
    let ceiling = ephemeral_range_start().unwrap_or(DEFAULT_EPHEMERAL_START);
    if let Some(span) = ceiling
        .checked_sub(LOWEST_PICKED_PORT)
        .filter(|span| *span > 0)
    {
        for _ in 0..64 {
            let mut word = [0u8; 2];
            getrandom::getrandom(&mut word).map_err(std::io::Error::other)?;
            let port = LOWEST_PICKED_PORT + u16::from_le_bytes(word) % span;
            if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(port);
            }
        }
    }
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Waits (at most ten seconds, looking every 20 ms) until `is_ours` finds the server that
/// `process` runs answering on `port`. Fails at once when the process has exited (most
/// likely it could not bind the port), naming it as `what`: an answer then would come from
/// another test's server, which is why `is_ours` must recognise this one's.
pub fn wait_until_serving(
    process: &mut Child,
    what: &str,
    port: u16,
    mut is_ours: impl FnMut() -> bool,
) -> std::io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if !matches!(process.try_wait(), Ok(None)) {
            return Err(std::io::Error::other(format!(
                "{what} exited (port {port} taken?)"
            )));
        }
        if is_ours() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(std::io::Error::other(format!(
                "{what} did not answer on port {port} in 10 s"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ephemeral_range_start() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_ports_are_free_and_below_the_ephemeral_range() {
        let ceiling = ephemeral_range_start().unwrap_or(DEFAULT_EPHEMERAL_START);
        for _ in 0..20 {
            let port = unused_loopback_port().unwrap();
            if ceiling > LOWEST_PICKED_PORT {
                assert!((LOWEST_PICKED_PORT..ceiling).contains(&port), "{port}");
            }
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("the port is free");
        }
    }
}
