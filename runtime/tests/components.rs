//! Component packs (`wit/component.wit`): built here from a core module and the WIT in
//! `wit/` the way guest toolchains build them (wit-component), so the contract a component
//! author compiles against is the one the runtime links. They load through the same
//! `Pack::load`, and keep the same limits, usage, isolation and error codes as modules.

mod support;

use packhost::Pack;
use support::options;

/// The conformance suite's component pack, built from its sources, with `manifest` (JSON)
/// in its `packhost/manifest` section when given.
fn fixture(manifest: Option<&str>) -> Vec<u8> {
    support::component_fixture("component_tools", manifest)
}

fn load(options_json: &str) -> Pack {
    Pack::load(&fixture(None), options(options_json)).expect("the component loads")
}

/// The fixture with its manifest, which asks for kv, a secret and HTTP hosts (a pack without
/// a manifest is never granted kv or secrets; HTTP, as in Extism, goes to `allowed_hosts`).
fn load_with_manifest(options_json: &str) -> Pack {
    let manifest = std::fs::read_to_string(
        support::repo_root().join("tests/conformance/fixtures/component_tools.manifest.json"),
    )
    .unwrap();
    Pack::load(&fixture(Some(&manifest)), options(options_json)).expect("the component loads")
}

#[test]
fn a_component_pack_loads_through_pack_load_and_its_actions_run() {
    let pack = load("{}");
    let info = pack.module_info();
    assert!(info.component);
    let callable: Vec<&str> = info.callable_exports().collect();
    assert_eq!(
        callable,
        [
            "shout",
            "fail",
            "spin",
            "hog",
            "crash",
            "greet",
            "remember",
            "kv_put",
            "kv_get",
            "kv_delete",
            "kv_claim",
            "kv_keys",
            "secret",
            "fetch"
        ],
        "functions of the action shape are actions; not-an-action is not"
    );
    let shouted = pack.call("shout", b"hello, component").expect("shout");
    assert_eq!(shouted.output, b"HELLO, COMPONENT");
    assert!(shouted.usage.fuel_consumed > 0, "calls are metered");
    assert!(shouted.usage.peak_memory_bytes >= 65536);
    // A large input is lowered through the component's own allocator.
    let big = vec![b'a'; 3 << 20];
    assert_eq!(
        pack.call("shout", &big).expect("3 MiB").output,
        vec![b'A'; 3 << 20]
    );
}

#[test]
fn a_component_error_is_a_plugin_error_with_its_message() {
    let err = load("{}").call("fail", b"").unwrap_err();
    assert_eq!(err.code(), "plugin_error");
    assert_eq!(err.message(), "no good");
    assert_eq!(err.return_code(), Some(1));
}

#[test]
fn a_component_runs_under_the_same_limits_and_codes_as_a_module() {
    let pack = load(r#"{"limits": {"timeout_ms": 50, "memory_bytes": 4194304}}"#);
    let started = std::time::Instant::now();
    let err = pack.call("spin", b"").unwrap_err();
    assert_eq!(err.code(), "timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let report = err.report().expect("a failed call reports its usage");
    assert!(
        report.usage.fuel_consumed > 1000,
        "a timed-out spin is billed"
    );

    assert_eq!(pack.call("hog", b"").unwrap_err().code(), "memory_limit");
    assert_eq!(pack.call("crash", b"").unwrap_err().code(), "trap");
    // A 5 MiB input cannot be lowered into a 4 MiB memory.
    let err = pack.call("shout", &vec![b'a'; 5 << 20]).unwrap_err();
    assert_eq!(err.code(), "memory_limit", "{}", err.message());
    // The pack lives on after every failure.
    assert_eq!(pack.call("shout", b"ok").unwrap().output, b"OK");

    let fuel = load(r#"{"limits": {"fuel": 100000}}"#);
    assert_eq!(fuel.call("spin", b"").unwrap_err().code(), "out_of_fuel");
}

#[test]
fn a_component_reads_only_declared_config_and_logs_through_the_host() {
    let manifest = r#"{"name": "fixture", "version": "1.0.0",
        "actions": [{"name": "greet"}, {"name": "shout"}],
        "capabilities": {"config": ["greeting"]}}"#;
    let pack = Pack::load(
        &fixture(Some(manifest)),
        options(r#"{"config": {"greeting": "hi there"}, "log_level": "info"}"#),
    )
    .expect("loads with its manifest");
    assert_eq!(pack.manifest().name, "fixture");
    let greeted = pack.call("greet", b"").expect("greet");
    assert_eq!(greeted.output, b"hi there");
    let lines: Vec<&str> = greeted.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(lines, ["hi there"]);

    // A manifest that does not declare the key sees none of it.
    let undeclared = Pack::load(
        &fixture(Some(
            r#"{"name": "fixture", "version": "1.0.0", "actions": [{"name": "greet"}]}"#,
        )),
        options(r#"{"config": {"greeting": "hi there"}}"#),
    )
    .unwrap();
    assert_eq!(undeclared.call("greet", b"").unwrap().output, b"none");
}

#[test]
fn isolation_decides_whether_a_component_sees_an_earlier_call() {
    let fresh = load(r#"{"isolation": "call"}"#);
    fresh.call("remember", b"secret of caller A").unwrap();
    assert_eq!(
        fresh.call("remember", b"B").unwrap().output,
        b"",
        "isolation call: a fresh instance per call"
    );
    let warm = load(r#"{"isolation": "pack"}"#);
    warm.call("remember", b"warm state").unwrap();
    assert_eq!(warm.call("remember", b"B").unwrap().output, b"warm state");
}

#[test]
fn calls_outside_the_actions_are_typed_errors() {
    let pack = load("{}");
    assert_eq!(
        pack.call("not_an_action", b"").unwrap_err().code(),
        "action_not_found"
    );
    assert_eq!(
        pack.call("missing", b"").unwrap_err().code(),
        "action_not_found"
    );
}

#[test]
fn a_component_importing_what_packhost_does_not_lend_is_refused_at_load() {
    let component = wat::parse_str(
        r#"(component
             (import "wasi:cli/environment@0.2.0" (instance))
             (import "acme:secret/api" (instance)))"#,
    )
    .unwrap();
    let err = Pack::load(&component, options("{}")).unwrap_err();
    assert_eq!(err.code(), "invalid_pack");
    assert!(
        err.message().contains("wasi:cli/environment"),
        "{}",
        err.message()
    );

    let err = Pack::load(&fixture(None), options(r#"{"engine": "extism"}"#)).unwrap_err();
    assert_eq!(err.code(), "invalid_options");
    assert!(err.message().contains("native engine"), "{}", err.message());
}

#[test]
fn a_components_manifest_is_embedded_and_replaced_at_its_top_level() {
    let first = r#"{"name": "first", "version": "1.0.0", "actions": [{"name": "shout"}]}"#;
    let second = r#"{"name": "second", "version": "2.0.0", "actions": [{"name": "greet"}]}"#;
    let once = packhost::embed_manifest(&fixture(None), first.as_bytes()).expect("embeds");
    let twice = packhost::embed_manifest(&once, second.as_bytes()).expect("replaces");
    let pack = Pack::load(&twice, options("{}")).expect("the component still loads");
    assert_eq!(pack.manifest().name, "second");
    assert_eq!(pack.call("greet", b"").unwrap().output, b"none");
    assert_eq!(
        pack.call("shout", b"x").unwrap_err().code(),
        "action_not_found",
        "only the manifest's actions are callable"
    );
}

#[test]
fn a_component_with_an_invalid_function_body_fails_as_invalid_pack_when_compiled() {
    // Load reads a component without validating its function bodies (wasmtime does, as it
    // compiles them): the pack loads, and its first call is refused, the host unharmed.
    let component = wat::parse_str(
        r#"(component
             (core module $m
               (memory (export "memory") 1)
               (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 0)
               (func (export "act") (param i32 i32) (result i32)))
             (core instance $i (instantiate $m))
             (type $action (func (param "input" (list u8))
                                 (result (result (list u8) (error string)))))
             (alias core export $i "act" (core func $act))
             (alias core export $i "memory" (core memory $mem))
             (alias core export $i "realloc" (core func $realloc))
             (func (export "act") (type $action)
               (canon lift (core func $act) (memory $mem) (realloc $realloc))))"#,
    )
    .unwrap();
    let pack = Pack::load(&component, options("{}")).expect("loads without body validation");
    let err = pack.call("act", b"").unwrap_err();
    assert_eq!(err.code(), "invalid_pack");
    assert!(err.message().contains("compile"), "{}", err.message());
}

#[test]
fn a_component_making_resources_of_its_own_is_refused_at_load() {
    // Handles of its own resources would live in a host table memory_bytes does not count.
    let component = wat::parse_str(
        r#"(component
             (type $handle (resource (rep i32)))
             (core func $new (canon resource.new $handle))
             (core module $m
               (import "" "new" (func (param i32) (result i32)))
               (func (export "hoard") (loop $again
                 (drop (call 0 (i32.const 0))) (br $again))))
             (core instance $i (instantiate $m
               (with "" (instance (export "new" (func $new)))))))"#,
    )
    .unwrap();
    let err = Pack::load(&component, options("{}")).unwrap_err();
    assert_eq!(err.code(), "invalid_pack");
    assert!(err.message().contains("resources"), "{}", err.message());
}

#[test]
fn embedding_a_generated_manifest_into_a_component_says_to_give_the_file() {
    let err = packhost::embed_generated_manifest(&fixture(None)).unwrap_err();
    assert_eq!(err.code(), "invalid_pack");
    assert!(err.message().contains("--manifest"), "{}", err.message());
}

#[test]
fn a_component_reaches_http_only_through_the_grant_and_every_request_is_audited() {
    let (port, server) = support::serve_once(
        "HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong",
    );
    let request = serde_json::json!({ "url": format!("http://127.0.0.1:{port}/ping") }).to_string();

    // Without the opt-in for loopback, the same request is refused before connecting.
    let refused = load(
        &serde_json::json!({"allowed_hosts": ["127.0.0.1"], "http": {"allowed_ports": [port]}})
            .to_string(),
    )
    .call("fetch", request.as_bytes())
    .unwrap_err();
    assert_eq!(refused.code(), "host_denied");
    assert!(
        refused.message().contains("loopback"),
        "{}",
        refused.message()
    );

    let pack = load(
        &serde_json::json!({
            "allowed_hosts": ["127.0.0.1"],
            "http": {"allow_private_hosts": ["127.0.0.1"], "allowed_ports": [port]}
        })
        .to_string(),
    );
    let reply = pack.call("fetch", request.as_bytes()).expect("fetch");
    assert_eq!(reply.output, b"pong");
    assert_eq!(reply.usage.http_requests, 1);
    let audited: Vec<(String, Option<u16>)> = reply
        .audit
        .iter()
        .map(|entry| (entry.target.clone(), entry.status))
        .collect();
    assert_eq!(audited, [("127.0.0.1".to_string(), Some(200))]);
    assert!(server.join().unwrap().starts_with("GET /ping "));
}

#[test]
fn a_components_kv_calls_are_counted_and_audited_as_a_modules_are() {
    let pack = load_with_manifest(r#"{"kv": {"backend": "memory", "path": "component-kv-audit"}}"#);
    let put = pack.call("kv_put", b"color").expect("kv_put");
    assert_eq!(put.usage.kv_ops, 1);
    let got = pack.call("kv_get", b"color").expect("kv_get");
    assert_eq!(got.output, b"color");
    let audited: Vec<(&str, &str, u64)> = got
        .audit
        .iter()
        .map(|entry| {
            (
                entry.operation.as_str(),
                entry.target.as_str(),
                entry.bytes_received,
            )
        })
        .collect();
    assert_eq!(audited, [("get", "color", 5)]);
    assert_eq!(
        pack.call("kv_get", b"missing").expect("kv_get").output,
        b"none"
    );
}

#[test]
fn a_warm_instance_that_keeps_growing_is_renewed_between_calls_instead_of_failing_one() {
    // The fixture's bump allocator never frees, so every input stays in its memory, as the
    // Python and JavaScript toolchains' components keep a little of every call.
    let pack = load(r#"{"isolation": "pack", "limits": {"memory_bytes": 4194304}}"#);
    pack.call("remember", b"kept").expect("remember");
    assert_eq!(
        pack.call("remember", b"again").expect("remember").output,
        b"kept",
        "the instance is warm"
    );
    let input = vec![b'a'; 512 << 10];
    for round in 0..40 {
        if let Err(err) = pack.call("shout", &input) {
            panic!("call {round} of 20 MiB through a 4 MiB instance: {err}");
        }
    }
    assert_eq!(
        pack.call("remember", b"x").expect("remember").output,
        b"",
        "the instance was renewed on the way, its state with it"
    );
}

#[test]
fn a_warm_instance_whose_memory_stays_put_is_kept_however_close_to_the_limit() {
    let pack = load(r#"{"isolation": "pack", "limits": {"memory_bytes": 4194304}}"#);
    // The first call takes the instance to over three quarters of its limit, for good.
    let big = vec![b'a'; 3 << 20];
    pack.call("shout", &big).expect("3 MiB");
    for round in 0..20 {
        let remembered = pack.call("remember", format!("{round}").as_bytes());
        let expected = if round == 0 {
            String::new()
        } else {
            format!("{}", round - 1)
        };
        assert_eq!(
            remembered.expect("remember").output,
            expected.as_bytes(),
            "call {round}: the instance stayed warm"
        );
    }
}

/// The suite's component that calls the host's functions by name, with `manifest`.
fn host_calls(manifest: Option<&str>) -> Vec<u8> {
    support::component_fixture("component_host_calls", manifest)
}

#[test]
fn a_component_without_a_manifest_may_call_every_bytes_function_the_host_lends() {
    // No manifest: as for any plugin without one, the host's grant is the whole policy.
    let pack = Pack::load_with(
        &host_calls(None),
        options("{}"),
        support::conformance_functions(),
    )
    .expect("loads");
    let added = pack
        .call("add_undeclared", br#"{"a": 2, "b": 40}"#)
        .expect("add is lent");
    assert_eq!(added.output, br#"{"sum":42}"#);
    assert_eq!(added.usage.host_calls, 1);
    // A name the host does not lend is refused when called.
    let lonely = Pack::load_with(
        &host_calls(None),
        options("{}"),
        vec![packhost::HostFunction::bytes("reverse", |_, input| {
            Ok(input.iter().rev().copied().collect())
        })],
    )
    .expect("loads");
    assert_eq!(
        lonely.call("reverse_via_host", b"abc").unwrap().output,
        b"cba"
    );
    let err = lonely.call("add_undeclared", b"{}").unwrap_err();
    assert_eq!(err.code(), "host_denied", "{}", err.message());
    // A name of a megabyte is refused, and the refusal and its audit entry keep only its
    // start.
    let err = lonely.call("call_named", &vec![b'a'; 1 << 20]).unwrap_err();
    assert_eq!(err.code(), "host_denied");
    assert!(err.message().len() < 1024, "{} bytes", err.message().len());
    let audited: Vec<(String, usize)> = err
        .report()
        .expect("a refused call reports")
        .audit
        .iter()
        .map(|entry| (entry.operation.clone(), entry.target.len()))
        .collect();
    assert_eq!(audited, [("call".to_string(), 128)]);
}

#[test]
fn a_component_calls_only_bytes_functions_of_extism_host_user() {
    let refused = |component: Vec<u8>, functions, code: &str, says: &str| {
        let err = Pack::load_with(&component, options("{}"), functions).unwrap_err();
        assert_eq!(err.code(), code, "{}", err.message());
        assert!(err.message().contains(says), "{}", err.message());
    };
    let manifest = |functions: &str| {
        format!(
            r#"{{"name": "calls", "version": "1.0.0", "actions": [{{"name": "reverse_via_host"}}],
                "capabilities": {{"host_functions": {functions}}}}}"#
        )
    };
    // Declared in another module: a component has no way to reach it.
    refused(
        host_calls(Some(&manifest(
            r#"[{"name": "reverse", "namespace": "env"}]"#,
        ))),
        support::conformance_functions(),
        "invalid_manifest",
        "a component calls only functions of",
    );
    // Lent with another signature than bytes in, bytes out.
    let typed = packhost::HostFunction::general(
        "reverse",
        [packhost::ValueType::I32],
        [packhost::ValueType::I32],
        |_, _, _| Ok(()),
    );
    refused(
        host_calls(Some(&manifest(r#"[{"name": "reverse"}]"#))),
        vec![typed],
        "invalid_pack",
        "bytes in and bytes out",
    );
    // Declared by a component that does not import packhost:pack/functions.
    refused(
        fixture(Some(
            r#"{"name": "tools", "version": "1.0.0", "actions": [{"name": "shout"}],
                "capabilities": {"host_functions": [{"name": "reverse"}]}}"#,
        )),
        support::conformance_functions(),
        "invalid_manifest",
        "packhost:pack/functions",
    );
}
