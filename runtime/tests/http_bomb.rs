//! A gzip bomb cannot blow up the host: a 1 MiB gzip body that decodes to 1 GiB ends the call
//! with `memory_limit` on both engines, and the process's peak resident memory stays within
//! the pack's `memory_bytes` plus 64 MiB. Alone in its file (its own process), so the peak
//! measured is this test's.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use packhost::Pack;
use support::{options, pack_path};

const DECODED_BYTES: usize = 1 << 30;
const MEMORY_BYTES: u64 = 32 << 20;

/// 1 GiB of zeros, gzip-compressed (about 1 MiB).
fn gzip_bomb() -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..DECODED_BYTES / chunk.len() {
        encoder.write_all(&chunk).unwrap();
    }
    encoder.finish().unwrap()
}

/// The process's peak resident memory so far, in bytes (Linux's VmHWM).
fn peak_resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn a_gzip_bomb_ends_with_memory_limit_and_the_host_stays_small() {
    let bomb = gzip_bomb();
    assert!(bomb.len() < 2 << 20, "the bomb is {} bytes", bomb.len());
    // Compile the pack on both engines first, so compilation's own peak is not counted.
    for engine in ["native", "extism"] {
        let warm = serde_json::json!({"engine": engine});
        let pack = Pack::load_file(pack_path("hostile"), options(&warm.to_string())).unwrap();
        pack.call("busy", br#"{"rounds":1}"#).unwrap();
    }
    let before = peak_resident_bytes();
    for engine in ["native", "extism"] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = bomb.clone();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            // The client hangs up once it has read enough; that write error is the point.
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        });
        let grant = serde_json::json!({
            "engine": engine,
            "allowed_hosts": ["127.0.0.1"],
            "http": {"allow_private_hosts": ["127.0.0.1"], "allowed_ports": [port]},
            "limits": {"timeout_ms": 20000, "memory_bytes": MEMORY_BYTES},
        });
        let pack = Pack::load_file(pack_path("hostile"), options(&grant.to_string())).unwrap();
        let input = format!(r#"{{"url": "http://127.0.0.1:{port}/bomb"}}"#);
        let err = pack.call("fetch", input.as_bytes()).unwrap_err();
        assert_eq!(err.code(), "memory_limit", "{engine}: {err}");
        assert!(err.message().contains("larger than"), "{engine}: {err}");
        server.join().unwrap();
    }
    let grown = peak_resident_bytes().saturating_sub(before);
    assert!(
        grown < MEMORY_BYTES + (64 << 20),
        "peak resident memory grew by {} MiB",
        grown >> 20
    );
}
