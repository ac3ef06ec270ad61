//! The `packhost` command as a user runs it: output on stdout, errors with their code on
//! stderr, and exit status 0 / 1 (pack failed) / 2 (bad usage).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn pack(name: &str) -> String {
    let path = repo().join("plugins/dist").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "build the sample packs first with `make packs`"
    );
    path.to_string_lossy().into_owned()
}

fn packhost(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_packhost"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("packhost runs");
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn call_prints_the_output_and_usage_on_request() {
    let out = packhost(
        &["call", &pack("text_tools"), "uppercase", "shout", "--usage"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "SHOUT");
    let usage: serde_json::Value =
        serde_json::from_str(stderr(&out).trim()).expect("usage is JSON");
    assert_eq!(usage["output_bytes"], 5);
    assert!(usage["fuel_consumed"].as_u64().unwrap() > 0);
}

#[test]
fn call_reads_input_from_stdin_and_from_a_file() {
    let out = packhost(
        &["call", &pack("text_tools"), "count_vowels"],
        Some(r#"{"text": "banana"}"#),
    );
    assert_eq!(stdout(&out), r#"{"count":3,"vowels":"aaa"}"#);
    let data = repo().join("examples/data/stripe_card_declined.json");
    let out = packhost(
        &[
            "call",
            &pack("api_errors"),
            "post",
            "--input-file",
            data.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(r#""code":"card_declined""#));
}

#[test]
fn a_failing_call_exits_1_with_the_error_code() {
    let out = packhost(
        &[
            "call",
            &pack("hostile"),
            "spin",
            "--options",
            r#"{"limits": {"timeout_ms": 100, "fuel": null}}"#,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error[timeout]: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_options_exit_1_with_invalid_options() {
    let out = packhost(
        &[
            "call",
            &pack("text_tools"),
            "echo",
            "x",
            "--options",
            r#"{"limitz": {}}"#,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error[invalid_options]: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inspect_shows_manifest_hash_imports_and_exports() {
    let out = packhost(&["inspect", &pack("text_tools"), "--json"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["manifest"]["name"], "text-tools");
    assert_eq!(report["id"].as_str().unwrap().len(), 64);
    assert!(report["size"].as_u64().unwrap() > 1000);
    assert!(report["imports"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["module"] == "extism:host/env"));
    let count_vowels = &report["manifest"]["actions"][0];
    assert_eq!(count_vowels["name"], "count_vowels");
    assert_eq!(
        count_vowels["input"]["schema"]["properties"]["text"]["type"],
        "string"
    );

    let text = stdout(&packhost(&["inspect", &pack("plain")], None));
    assert!(text.contains("none (synthesized from exports)"), "{text}");

    let text = stdout(&packhost(&["inspect", &pack("host_calls_pdk")], None));
    assert!(
        text.contains("host functions extism:host/user::reverse, extism:host/user::add"),
        "{text}"
    );
    // The command lends no host functions: a call that reaches one fails, typed.
    let out = packhost(
        &["call", &pack("host_calls_pdk"), "reverse_via_host", "x"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("host_function_error"),
        "{out:?}"
    );
}

#[test]
fn validate_reports_each_pack_and_fails_on_a_bad_one() {
    let good = packhost(&["validate", &pack("api_errors"), &pack("plain")], None);
    assert!(good.status.success(), "{}", stdout(&good));
    assert_eq!(
        stdout(&good)
            .lines()
            .filter(|l| l.starts_with("ok "))
            .count(),
        2
    );

    // A pack importing host functions is valid; the command says what a host must lend.
    let lent = stdout(&packhost(&["validate", &pack("host_calls")], None));
    assert!(lent.contains("needs host functions"), "{lent}");
    assert!(lent.contains("context_echo"), "{lent}");

    let bad = repo().join("tests/conformance/fixtures/bad_import.wasm");
    let out = packhost(&["validate", &pack("plain"), bad.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("invalid_pack"), "{}", stdout(&out));
}

#[test]
fn embed_writes_a_manifest_that_loads_back() {
    let source = repo().join("tests/conformance/fixtures/answer.wasm");
    let dir = std::env::temp_dir().join(format!("packhost-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("manifest.json");
    std::fs::write(&manifest, r#"{"name": "answer", "version": "1.0.0", "actions": [{"name": "answer", "output": {"encoding": "text"}}]}"#).unwrap();
    let output = dir.join("answer.wasm");
    let out = packhost(
        &[
            "embed",
            source.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let call = packhost(&["call", output.to_str().unwrap(), "answer"], None);
    assert_eq!(stdout(&call), "42");
    let inspect = stdout(&packhost(&["inspect", output.to_str().unwrap()], None));
    assert!(inspect.starts_with("answer 1.0.0"), "{inspect}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unknown_command_exits_2() {
    let out = packhost(&["frobnicate"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn version_verbose_says_how_the_binary_was_built() {
    let out = packhost(&["--version"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("packhost {}\n", env!("CARGO_PKG_VERSION"))
    );

    let out = packhost(&["--version", "--verbose"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // The binary under test is built with the test's own profile (`release` under `make
    // test`, `dev` for a plain `cargo test`).
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    assert!(text.contains(&format!("\nprofile: {profile}\n")), "{text}");
    assert!(text.contains("\nwasmtime: 43."), "{text}");
    assert!(text.contains("\ndebug-assertions: "), "{text}");

    // --verbose alone is a usage error, not a silent no-op.
    assert_eq!(packhost(&["--verbose"], None).status.code(), Some(2));
}

#[test]
fn call_never_prints_a_secret_the_pack_read() {
    let options = r#"{"secrets": {"api_key": "sk_live_4242"}}"#;
    let out = packhost(
        &[
            "call",
            &pack("hostile"),
            "leak_secret",
            "api_key",
            "--options",
            options,
            "--logs",
            "--usage",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let printed = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!printed.contains("sk_live_4242"), "{printed}");
    assert!(printed.contains("the api_key is [redacted]"), "{printed}");
    assert!(
        printed.contains("error[plugin_error]: leaking api_key=[redacted]!"),
        "{printed}"
    );
}

#[test]
fn call_runs_the_plugin_an_extism_manifest_names_with_its_config() {
    let folder = std::env::temp_dir().join(format!("packhost-cli-manifest-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let manifest = folder.join("greeter.json");
    let write = |hash: &str| {
        let text = serde_json::json!({
            "wasm": [{"path": pack("plain"), "hash": hash}],
            "config": {"greeting": "Howdy"},
            "timeout_ms": 500,
        });
        std::fs::write(&manifest, text.to_string()).unwrap();
    };
    let bytes = std::fs::read(pack("plain")).unwrap();
    let hash: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    write(&hash);
    let path = manifest.to_string_lossy().into_owned();
    let out = packhost(&["call", &path, "greet", "partner"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Howdy, partner!");

    write(&"0".repeat(64));
    let out = packhost(&["call", &path, "greet", "partner"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid_pack"), "{}", stderr(&out));
    assert!(stderr(&out).contains("SHA-256"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&folder);
}

#[test]
fn call_links_the_modules_of_an_extism_manifest_and_stands_in_for_the_hosts_functions() {
    let folder = std::env::temp_dir().join(format!("packhost-cli-linked-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let manifest = folder.join("linked.json");
    let fixture = |name: &str| {
        repo()
            .join("tests/conformance/fixtures")
            .join(format!("{name}.wasm"))
            .to_string_lossy()
            .into_owned()
    };
    let text = serde_json::json!({
        "wasm": [
            {"path": fixture("linked_user_functions"), "name": "extism:host/user"},
            {"path": fixture("linked_user_main")},
        ],
    });
    std::fs::write(&manifest, text.to_string()).unwrap();
    let path = manifest.to_string_lossy().into_owned();
    // `greeting` comes from the linked module; `reverse`, which the main module imports
    // from the host, gets the command's stand-in.
    let out = packhost(&["call", &path, "greet", ""], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello from a linked module");
    let out = packhost(&["call", &path, "greet_reversed", ""], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("host_function_error"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&folder);
}

#[test]
fn test_runs_fixture_cases_and_shows_what_a_failing_one_expected_and_got() {
    let folder = std::env::temp_dir().join(format!("packhost-cli-fixtures-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let passing = serde_json::json!({"cases": [
        {"name": "counts", "export": "count_vowels", "input": "{\"text\": \"hello\"}",
         "output_json": {"vowels": "eo", "count": 2}, "max_fuel": 10_000_000},
        {"name": "fails", "export": "fail_with", "input": "no", "error": "plugin_error",
         "message_contains": "no", "return_code": 1},
        {"name": "greets", "options": {"config": {"greeting": "Hi"}}, "export": "greet",
         "input": "Ada", "output": "Hi, Ada!"},
        {"name": "logs", "export": "chatty", "output": "logged", "logs": [
            {"level": "info", "message": "info line"},
            {"level": "warn", "message": "warn line"},
            {"level": "error", "message": "error line"}]},
    ]});
    std::fs::write(folder.join("passing.json"), passing.to_string()).unwrap();
    let out = packhost(
        &["test", &pack("text_tools"), folder.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("4 cases: 4 passed, 0 failed"),
        "{}",
        stdout(&out)
    );

    let failing = serde_json::json!({"cases": [
        {"name": "shouts wrong", "export": "uppercase", "input": "hi", "output": "HI!"},
        {"name": "expects an error", "export": "echo", "input": "x", "error": "plugin_error"},
    ]});
    std::fs::write(folder.join("z_failing.json"), failing.to_string()).unwrap();
    let out = packhost(
        &["test", &pack("text_tools"), folder.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let printed = stdout(&out);
    assert!(printed.contains("FAIL  shouts wrong"), "{printed}");
    assert!(printed.contains("expected output \"HI!\""), "{printed}");
    assert!(printed.contains("actual output \"HI\""), "{printed}");
    assert!(printed.contains("FAIL  expects an error"), "{printed}");
    assert!(printed.contains("ok    counts"), "{printed}");
    assert!(printed.contains("6 cases: 4 passed, 2 failed"), "{printed}");

    // A fixture folder that does not exist is a usage error, not a pass.
    let missing = folder.join("nowhere");
    let out = packhost(
        &["test", &pack("text_tools"), missing.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&folder);
}

#[test]
fn the_readmes_fixture_example_passes_on_the_text_tools_pack() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = &readme[readme
        .find("## The `packhost` command")
        .expect("the section")..];
    let block = section
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a JSON fixture example in the section");
    let file = std::env::temp_dir().join(format!(
        "packhost-readme-fixture-{}.json",
        std::process::id()
    ));
    std::fs::write(&file, block).unwrap();
    let out = packhost(&["test", &pack("text_tools"), file.to_str().unwrap()], None);
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("2 cases: 2 passed"),
        "{}",
        stdout(&out)
    );
}

/// A fresh scratch folder for one test, named after it.
fn scratch(test: &str) -> PathBuf {
    let folder = std::env::temp_dir().join(format!("packhost-cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

/// Runs packhost in `dir`, with `PATH` replaced when `path` is given.
fn packhost_in(dir: &std::path::Path, args: &[&str], path: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_packhost"));
    command.args(args).current_dir(dir).stdin(Stdio::null());
    if let Some(path) = path {
        command.env("PATH", path);
    }
    command.output().expect("packhost runs")
}

#[test]
fn new_refuses_a_bad_name_and_an_existing_folder() {
    let folder = scratch("new-names");
    for bad in ["Demo", "../escape", "a b", ""] {
        let out = packhost_in(&folder, &["new", bad, "--lang", "c"], None);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("cannot name a pack"),
            "{}",
            stderr(&out)
        );
    }
    let out = packhost_in(&folder, &["new", "demo", "--lang", "c"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = packhost_in(&folder, &["new", "demo", "--lang", "rust"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    // The first project is left as it was.
    assert!(folder.join("demo/src/pack.c").is_file());
    assert!(!folder.join("demo/Cargo.toml").exists());
    let out = packhost_in(&folder, &["new", "other", "--lang", "cobol"], None);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&folder);
}

#[test]
fn build_names_the_missing_toolchain_and_what_to_install() {
    let folder = scratch("no-toolchain");
    // An empty PATH: no cargo, clang or node to be found.
    let empty = folder.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    for (lang, missing) in [
        ("rust", "rustup target add wasm32-unknown-unknown"),
        ("c", "apt-get install clang lld wasi-libc"),
        ("assemblyscript", "apt-get install nodejs npm"),
    ] {
        let out = packhost_in(&folder, &["new", lang, "--lang", lang], None);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = packhost_in(&folder.join(lang), &["build"], empty.to_str());
        assert_eq!(out.status.code(), Some(1), "{lang}: {}", stderr(&out));
        let said = stderr(&out);
        assert!(said.starts_with("packhost build: "), "{lang}: {said}");
        assert!(
            said.contains("is not installed") && said.contains(missing),
            "{lang}: {said}"
        );
        assert!(!said.contains("panicked"), "{lang}: {said}");
        assert!(
            !folder.join(lang).join("dist").exists(),
            "{lang}: nothing built"
        );
    }
    // A folder that is no project says what a project needs.
    let out = packhost_in(&empty, &["build"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("packhost new NAME --lang"),
        "{}",
        stderr(&out)
    );
    // Nothing built yet: test and check say to build first.
    for command in ["test", "check"] {
        let out = packhost_in(&folder.join("c"), &[command], None);
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert!(stderr(&out).contains("packhost build"), "{}", stderr(&out));
    }
    let _ = std::fs::remove_dir_all(&folder);
}

/// The whole authoring loop in C, whose toolchain builds in a second: `new`, `build`
/// (debug and release), `test`, `check`, and a failing fixture and check shown as such.
/// All three templates go through the same loop in scripts/authoring-check.sh
/// (`make test-authoring`).
#[test]
fn a_new_c_pack_builds_passes_its_tests_and_checks_clean() {
    let folder = scratch("new-c");
    let out = packhost_in(&folder, &["new", "demo", "--lang", "c"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let project = folder.join("demo");
    // From the folder above, naming the project.
    let out = packhost_in(&folder, &["build", "demo"], None);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("-> demo/dist/demo.wasm"),
        "{}",
        stdout(&out)
    );
    // From above, `check` finds the cases beside the pack's dist/.
    let out = packhost_in(&folder, &["check", "demo/dist/demo.wasm"], None);
    assert!(
        stdout(&out).contains("ok    fixtures pass"),
        "{}",
        stdout(&out)
    );
    for release in [false, true] {
        let args: &[&str] = if release {
            &["build", "--release"]
        } else {
            &["build"]
        };
        let out = packhost_in(&project, args, None);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        let said = stdout(&out);
        assert!(said.contains("-> dist/demo.wasm"), "{said}");
        assert!(said.contains("sha256") && said.contains("greet"), "{said}");
        assert!(stderr(&out).contains("==> "), "progress: {}", stderr(&out));
    }
    let size = std::fs::metadata(project.join("dist/demo.wasm"))
        .unwrap()
        .len();
    assert!(size < 30 * 1024, "the release C pack is {size} bytes");

    let out = packhost_in(&project, &["test"], None);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("7 cases: 7 passed, 0 failed"),
        "{}",
        stdout(&out)
    );
    let out = packhost_in(&project, &["check"], None);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(!stdout(&out).contains("FAIL"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("manifest complete"),
        "{}",
        stdout(&out)
    );

    // A case the pack does not meet: its name, what it expected and what came back.
    std::fs::write(
        project.join("tests/wrong.json"),
        r#"{"cases": [{"name": "greets loudly", "export": "greet", "input": "Ada", "output": "HELLO, ADA!"}]}"#,
    )
    .unwrap();
    let out = packhost_in(&project, &["test"], None);
    assert_eq!(out.status.code(), Some(1));
    let said = stdout(&out);
    assert!(said.contains("FAIL  greets loudly"), "{said}");
    assert!(said.contains("expected output \"HELLO, ADA!\""), "{said}");
    assert!(said.contains("actual output \"Hello, Ada!\""), "{said}");
    // check fails on it too, and on a budget the pack exceeds.
    let out = packhost_in(&project, &["check", "--max-size", "100"], None);
    assert_eq!(out.status.code(), Some(1));
    let said = stdout(&out);
    assert!(said.contains("FAIL  size"), "{said}");
    assert!(said.contains("FAIL  1 fixture case(s) failed"), "{said}");
    let _ = std::fs::remove_dir_all(&folder);
}

#[test]
fn check_flags_a_pack_without_a_manifest_and_lists_what_a_pack_asks_for() {
    // extism-pdk alone: no manifest, so nothing describes the actions.
    let out = packhost(
        &["check", &pack("plain"), "--fixtures", "/nonexistent"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let said = stdout(&out);
    assert!(said.contains("FAIL  no manifest embedded"), "{said}");
    assert!(said.contains("has no description"), "{said}");
    assert!(said.contains("FAIL  fixtures:"), "{said}");
    // The text-tools pack asks for a config key; check lists it and the ABI it imports.
    let out = packhost(
        &["check", &pack("text_tools"), "--fixtures", "/nonexistent"],
        None,
    );
    let said = stdout(&out);
    assert!(
        said.contains("info  asks for config keys: greeting"),
        "{said}"
    );
    assert!(
        said.contains("info  imports extism:host/env (the Extism ABI"),
        "{said}"
    );
}

#[test]
fn keygen_sign_and_verify_a_pack() {
    let folder = scratch("signing");
    let key = folder.join("key.json");
    let out = packhost(&["keygen", "-o", key.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let public = stdout(&out).trim().to_string();
    assert!(public.starts_with("ed25519:"), "{public}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key file is private");
    // A key file is never overwritten.
    let out = packhost(&["keygen", "-o", key.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));

    let copy = folder.join("text_tools.wasm");
    std::fs::copy(pack("text_tools"), &copy).unwrap();
    let copy = copy.to_str().unwrap();
    let out = packhost(&["sign", copy, "--key", key.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(folder.join("text_tools.wasm.sig").is_file());
    let out = packhost(&["verify", copy, "--trusted-key", &public], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("is signed by {public}")),
        "{}",
        stdout(&out)
    );
    // The key file itself names the trusted key too.
    let out = packhost(
        &["verify", copy, "--trusted-key", key.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // Another key is not trusted; an edited signature no longer matches.
    let other = folder.join("other.json");
    let other_public = stdout(&packhost(&["keygen", "-o", other.to_str().unwrap()], None))
        .trim()
        .to_string();
    let out = packhost(&["verify", copy, "--trusted-key", &other_public], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error[untrusted_pack]"),
        "{}",
        stderr(&out)
    );
    let signature = folder.join("text_tools.wasm.sig");
    let text = std::fs::read_to_string(&signature).unwrap();
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    let good = document["signature"].as_str().unwrap();
    // One character of the signature itself changed: only the cryptography can tell.
    let flipped = if good.starts_with('A') {
        good.replacen('A', "B", 1)
    } else {
        format!("A{}", &good[1..])
    };
    std::fs::write(&signature, text.replace(good, &flipped)).unwrap();
    let out = packhost(&["verify", copy, "--trusted-key", &public], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("altered or forged"),
        "{}",
        stderr(&out)
    );
    // The document edited to name another version does not match the pack.
    std::fs::write(
        &signature,
        text.replace("\"version\": \"0.1.0\"", "\"version\": \"9.9.9\""),
    )
    .unwrap();
    let out = packhost(&["verify", copy, "--trusted-key", &public], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("untrusted_pack"), "{}", stderr(&out));
    // A secret key given as a trusted key is refused without being repeated.
    let pair: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let secret = pair["secret_key"].as_str().unwrap();
    let out = packhost(&["verify", copy, "--trusted-key", secret], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains(secret), "{}", stderr(&out));
    // Unsigned: refused when a signature is required.
    std::fs::remove_file(&signature).unwrap();
    let out = packhost(&["verify", copy, "--trusted-key", &public], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not signed"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&folder);
}
