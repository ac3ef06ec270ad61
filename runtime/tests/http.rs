//! HTTP stays inside the grant, on both engines: loopback, link-local and private addresses
//! are refused unless the host opts a name in, ports and redirect hops are checked, redirects
//! are not followed by default, and a server that never answers cannot hold a call past its
//! time limit. Every server here listens on loopback.

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use packhost::Pack;
use support::{options, pack_path, serve_once};

const ENGINES: [&str; 2] = ["native", "extism"];

/// The hostile pack on `engine` with `grant` (options JSON without the engine).
fn hostile(engine: &str, grant: serde_json::Value) -> Pack {
    let mut grant = grant;
    grant["engine"] = engine.into();
    grant["limits"]["timeout_ms"] = grant["limits"]["timeout_ms"]
        .as_u64()
        .unwrap_or(5000)
        .into();
    Pack::load_file(pack_path("hostile"), options(&grant.to_string())).expect("hostile loads")
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn redirect_to(location: &str) -> String {
    format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
}

fn fetch(pack: &Pack, url: &str) -> packhost::Result<serde_json::Value> {
    let input = serde_json::json!({ "url": url }).to_string();
    let out = pack.call("fetch", input.as_bytes())?;
    Ok(serde_json::from_slice(&out.output).unwrap())
}

fn denied(result: packhost::Result<serde_json::Value>) -> String {
    let err = result.expect_err("the request must be refused");
    assert_eq!(err.code(), "host_denied", "{err}");
    err.message().to_string()
}

/// A listener nobody may connect to: after the test, `untouched` says whether it was.
fn trap_listener() -> (u16, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    (listener.local_addr().unwrap().port(), listener)
}

fn untouched(listener: &TcpListener) -> bool {
    matches!(listener.accept(), Err(err) if err.kind() == std::io::ErrorKind::WouldBlock)
}

/// On both engines: fetching `url` (`{port}` stands for a listener's port) under
/// `grant(port)` is `host_denied` with every one of `reasons`, and nothing connects.
fn refused_without_connecting(
    grant: impl Fn(u16) -> serde_json::Value,
    url: &str,
    reasons: &[&str],
) {
    for engine in ENGINES {
        let (port, listener) = trap_listener();
        let pack = hostile(engine, grant(port));
        let message = denied(fetch(&pack, &url.replace("{port}", &port.to_string())));
        for reason in reasons {
            let reason = reason.replace("{port}", &port.to_string());
            assert!(message.contains(&reason), "{engine}: {message}");
        }
        assert!(
            untouched(&listener),
            "{engine}: the refused address was connected to"
        );
    }
}

#[test]
fn a_granted_loopback_host_is_refused_without_the_opt_in_and_never_connected() {
    refused_without_connecting(
        |port| serde_json::json!({"allowed_hosts": ["127.0.0.1"], "http": {"allowed_ports": [port]}}),
        "http://127.0.0.1:{port}/",
        &["127.0.0.1 is a loopback address"],
    );
}

#[test]
fn a_granted_name_whose_dns_answer_is_loopback_is_refused() {
    refused_without_connecting(
        |port| serde_json::json!({"allowed_hosts": ["localhost"], "http": {"allowed_ports": [port]}}),
        "http://localhost:{port}/",
        &["localhost resolves to", "a loopback address"],
    );
}

#[test]
fn the_opt_in_reaches_a_loopback_server_on_a_granted_port() {
    for engine in ENGINES {
        let (port, server) = serve_once(ok("pong"));
        let pack = hostile(
            engine,
            serde_json::json!({
                "allowed_hosts": ["127.0.0.1"],
                "http": {"allow_private_hosts": ["127.0.0.1"], "allowed_ports": [port]}
            }),
        );
        let reply = fetch(&pack, &format!("http://127.0.0.1:{port}/ping")).expect(engine);
        assert_eq!(
            reply,
            serde_json::json!({"status": 200, "body": "pong"}),
            "{engine}"
        );
        assert!(server.join().unwrap().starts_with("GET /ping "), "{engine}");
    }
}

#[test]
fn a_port_outside_the_grant_is_refused_even_with_the_opt_in() {
    refused_without_connecting(
        |_| {
            serde_json::json!({
                "allowed_hosts": ["127.0.0.1"],
                "http": {"allow_private_hosts": ["127.0.0.1"]}
            })
        },
        "http://127.0.0.1:{port}/",
        &["the port {port} is not granted"],
    );
}

/// The grant for a first hop on loopback (opted in) on the given ports.
fn loopback_grant(ports: &[u16], extra: serde_json::Value) -> serde_json::Value {
    let mut grant = serde_json::json!({
        "allowed_hosts": ["127.0.0.1", "localhost", "169.254.169.254"],
        "http": {"allow_private_hosts": ["127.0.0.1"], "allowed_ports": ports}
    });
    for (key, value) in extra.as_object().unwrap() {
        grant["http"][key] = value.clone();
    }
    grant
}

#[test]
fn redirects_are_handed_to_the_pack_not_followed_by_default() {
    for engine in ENGINES {
        let (target, listener) = trap_listener();
        let (port, server) = serve_once(redirect_to(&format!("http://127.0.0.1:{target}/next")));
        let pack = hostile(
            engine,
            loopback_grant(&[port, target], serde_json::json!({})),
        );
        let reply = fetch(&pack, &format!("http://127.0.0.1:{port}/")).expect(engine);
        assert_eq!(reply["status"], 302, "{engine}");
        server.join().unwrap();
        assert!(untouched(&listener), "{engine}: the redirect was followed");
    }
}

#[test]
fn every_redirect_hop_is_checked_like_the_first() {
    for engine in ENGINES {
        // To a name that resolves to loopback but was not opted in.
        let (target, listener) = trap_listener();
        let (port, server) = serve_once(redirect_to(&format!("http://localhost:{target}/")));
        let pack = hostile(
            engine,
            loopback_grant(&[port, target], serde_json::json!({"max_redirects": 3})),
        );
        let message = denied(fetch(&pack, &format!("http://127.0.0.1:{port}/")));
        assert!(
            message.contains("localhost resolves to"),
            "{engine}: {message}"
        );
        server.join().unwrap();
        assert!(untouched(&listener), "{engine}");

        // To the cloud metadata endpoint.
        let (port, server) = serve_once(redirect_to("http://169.254.169.254/latest/meta-data/"));
        let pack = hostile(
            engine,
            loopback_grant(&[port, 80], serde_json::json!({"max_redirects": 3})),
        );
        let message = denied(fetch(&pack, &format!("http://127.0.0.1:{port}/")));
        assert!(
            message.contains("169.254.169.254 is a link-local address"),
            "{engine}: {message}"
        );
        server.join().unwrap();

        // To a port the grant does not name.
        let (target, listener) = trap_listener();
        let (port, server) = serve_once(redirect_to(&format!("http://127.0.0.1:{target}/")));
        let pack = hostile(
            engine,
            loopback_grant(&[port], serde_json::json!({"max_redirects": 3})),
        );
        let message = denied(fetch(&pack, &format!("http://127.0.0.1:{port}/")));
        assert!(
            message.contains(&format!("the port {target} is not granted")),
            "{engine}: {message}"
        );
        server.join().unwrap();
        assert!(untouched(&listener), "{engine}");
    }
}

#[test]
fn a_server_that_never_answers_cannot_hold_the_call_past_its_limit() {
    for engine in ENGINES {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts and reads, then stays silent until the test is over.
        let silent = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            std::thread::sleep(Duration::from_secs(3));
        });
        let mut grant = loopback_grant(&[port], serde_json::json!({}));
        grant["limits"] = serde_json::json!({"timeout_ms": 400});
        let pack = hostile(engine, grant);
        let started = Instant::now();
        let err = fetch(&pack, &format!("http://127.0.0.1:{port}/")).unwrap_err();
        let took = started.elapsed();
        assert_eq!(err.code(), "timeout", "{engine}: {err}");
        // The server stays silent for 3 s; the call ends near its 400 ms limit (with slack
        // for a loaded machine, where the failed instance is also replaced in the call).
        assert!(
            took < Duration::from_millis(1200),
            "{engine}: the call took {took:?}"
        );
        silent.join().unwrap();
    }
}

#[test]
fn max_response_bytes_caps_a_body_below_the_memory_left() {
    for engine in ENGINES {
        let (port, server) = serve_once(ok(&"x".repeat(2000)));
        let mut grant = loopback_grant(&[port], serde_json::json!({"max_response_bytes": 1000}));
        grant["allowed_hosts"] = serde_json::json!(["127.0.0.1"]);
        let pack = hostile(engine, grant);
        let err = fetch(&pack, &format!("http://127.0.0.1:{port}/big")).expect_err(engine);
        assert_eq!(err.code(), "memory_limit", "{engine}: {err}");
        assert!(
            err.message()
                .contains("larger than the 1000 bytes http.max_response_bytes allows"),
            "{engine}: {err}"
        );
        server.join().unwrap();
    }
}

#[test]
fn response_headers_reach_the_pack_only_when_the_host_lets_them() {
    for engine in ENGINES {
        for (enabled, expected) in [
            (false, serde_json::json!({})),
            (
                true,
                serde_json::json!({"connection": "close", "content-length": "4", "x-trace": "abc"}),
            ),
        ] {
            let (port, server) = serve_once(
                "HTTP/1.1 200 OK\r\nx-trace: abc\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong",
            );
            let mut grant =
                loopback_grant(&[port], serde_json::json!({"response_headers": enabled}));
            grant["engine"] = engine.into();
            let pack = Pack::load_file(pack_path("plain"), options(&grant.to_string()))
                .expect("plain loads");
            let url = format!("http://127.0.0.1:{port}/");
            let out = pack.call("fetch_headers", url.as_bytes()).expect(engine);
            let headers: serde_json::Value = serde_json::from_slice(&out.output).unwrap();
            assert_eq!(headers, expected, "{engine}, response_headers {enabled}");
            server.join().unwrap();
        }
    }
}

/// A loopback server that answers one request with `body` as a module download.
fn serve_module(body: &[u8]) -> (u16, JoinHandle<String>) {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/wasm\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    serve_once(response)
}

#[test]
fn an_extism_manifest_loads_its_module_by_url_and_checks_its_hash() {
    let bytes = std::fs::read(pack_path("plain")).unwrap();
    let hash = Pack::load(&bytes, Default::default())
        .unwrap()
        .id()
        .to_string();
    for (hash, loads) in [(hash, true), ("ab".repeat(32), false)] {
        let (port, server) = serve_module(&bytes);
        let manifest = serde_json::json!({
            "wasm": [{"url": format!("http://127.0.0.1:{port}/plain.wasm"), "hash": hash,
                      "name": "greeter"}],
            "config": {"greeting": "Hi"},
        });
        let loaded = Pack::load_extism_manifest(&manifest.to_string(), Default::default(), vec![]);
        assert!(server.join().unwrap().starts_with("GET /plain.wasm "));
        match loaded {
            Ok(pack) => {
                assert!(loads, "a module with another hash loaded");
                assert_eq!(pack.manifest().name, "greeter");
                let out = pack.call("greet", b"there").unwrap();
                assert_eq!(out.text().unwrap(), "Hi, there!");
            }
            Err(err) => {
                assert!(!loads, "{err}");
                assert_eq!(err.code(), "invalid_pack", "{err}");
            }
        }
    }
}
