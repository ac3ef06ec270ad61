//! The Rust runner of the shared conformance suite in `tests/conformance/`: every case on
//! every engine, the same way every host runs it. `PACKHOST_BLESS=1` regenerates `fuel.json`
//! and the fixture modules instead of checking them.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use packhost::{CallOptions, CancelToken, Error, Flow, Pack, PackOptions, ERROR_CODES};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    pack: Option<String>,
    /// Instead of `pack`: run the case once on each of these sample packs, as `NAME/PACK`.
    #[serde(default)]
    packs: Vec<String>,
    pack_file: Option<String>,
    extism_manifest: Option<Value>,
    options: Option<Value>,
    actions: Option<Vec<String>>,
    #[serde(default)]
    host_functions: bool,
    #[serde(flatten)]
    call: Call,
    #[serde(default)]
    then: Vec<Call>,
    /// A flow case: the definition, run on `flow_input` with `flow_packs`.
    flow: Option<Value>,
    /// The flow's pack names, each to the sample pack it is loaded from.
    #[serde(default)]
    flow_packs: BTreeMap<String, String>,
    flow_input: Option<Value>,
    /// The run's steps, `{"id", "status"}` each, in the definition's order.
    steps: Option<Vec<Value>>,
    /// False for packs whose builds are not reproducible (an interpreter's snapshot holds
    /// build-time hash seeds and clocks): fuel.json has no entry for the case, and a
    /// successful call need only burn some fuel.
    #[serde(default = "fuel_pinned_by_default")]
    fuel_pinned: bool,
}

fn fuel_pinned_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Call {
    /// In a `then` step: call this sample pack, loaded with the case's options, instead.
    pack: Option<String>,
    export: Option<String>,
    #[serde(default)]
    input: String,
    input_repeat: Option<usize>,
    output: Option<String>,
    output_json: Option<Value>,
    error: Option<String>,
    message_contains: Option<String>,
    return_code: Option<i32>,
    logs: Option<Vec<Value>>,
    context: Option<Value>,
    cancel_after_ms: Option<u64>,
    host_calls: Option<u64>,
    kv_ops: Option<u64>,
    audit: Option<Vec<Value>>,
}

fn conformance_dir() -> PathBuf {
    support::repo_root().join("tests/conformance")
}

fn blessing() -> bool {
    std::env::var_os("PACKHOST_BLESS").is_some()
}

fn load_cases() -> Vec<(String, Case)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(conformance_dir().join("cases"))
        .expect("cases folder exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("case file is readable");
        let parsed: CaseFile =
            serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        for case in parsed.cases {
            cases.extend(
                one_per_pack(case)
                    .into_iter()
                    .map(|case| (stem.clone(), case)),
            );
        }
    }
    cases
}

/// `case`, or for a case with `packs`, one case per pack, named `NAME/PACK`.
fn one_per_pack(case: Case) -> Vec<Case> {
    if case.packs.is_empty() {
        return vec![case];
    }
    assert!(
        case.pack.is_none() && case.pack_file.is_none() && case.extism_manifest.is_none(),
        "{}: packs replaces pack, pack_file and extism_manifest",
        case.name
    );
    case.packs
        .iter()
        .map(|pack| Case {
            name: format!("{}/{pack}", case.name),
            pack: Some(pack.clone()),
            packs: Vec::new(),
            ..case.clone()
        })
        .collect()
}

/// A call whose cancel token another thread cancels `cancel_after_ms` after it starts (or
/// before it, for 0).
fn call_cancelled(
    pack: &Pack,
    export: &str,
    input: &[u8],
    call: &Call,
) -> packhost::Result<packhost::CallOutput> {
    let token = CancelToken::new();
    let options = CallOptions {
        context: call.context.clone().unwrap_or(Value::Null),
        cancel: Some(token.clone()),
    };
    let after = call.cancel_after_ms.unwrap_or(0);
    if after == 0 {
        token.cancel();
        return pack.call_with_options(export, input, &options);
    }
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(after));
            token.cancel();
        });
        pack.call_with_options(export, input, &options)
    })
}

/// Runs one call and returns the mismatches, recording fuel of successful calls.
fn check_call(
    pack: &Pack,
    key: &str,
    call: &Call,
    fuel: Option<&mut BTreeMap<String, u64>>,
    expected_fuel: &BTreeMap<String, u64>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let export = call.export.as_deref().expect("a call names its export");
    let input = call.input.repeat(call.input_repeat.unwrap_or(1));
    let result = match (export, &call.context) {
        _ if call.cancel_after_ms.is_some() => call_cancelled(pack, export, input.as_bytes(), call),
        (_, Some(context)) => pack.call_with_options(
            export,
            input.as_bytes(),
            &CallOptions {
                context: context.clone(),
                ..CallOptions::default()
            },
        ),
        ("pre", None) => pack.pre(input.as_bytes()),
        ("post", None) => pack.post(input.as_bytes()),
        (other, None) => pack.call(other, input.as_bytes()),
    };
    let usage = match &result {
        Ok(out) => Some(&out.usage),
        Err(err) => err.report().map(|report| &report.usage),
    };
    if let Some(want) = call.host_calls {
        if usage.map(|usage| usage.host_calls) != Some(want) {
            problems.push(format!(
                "host calls {:?}, expected {want}",
                usage.map(|u| u.host_calls)
            ));
        }
    }
    if let Some(want) = call.kv_ops {
        if usage.map(|usage| usage.kv_ops) != Some(want) {
            problems.push(format!(
                "kv ops {:?}, expected {want}",
                usage.map(|u| u.kv_ops)
            ));
        }
    }
    if let Some(expected) = &call.audit {
        let report = match &result {
            Ok(out) => Some(out.audit.as_slice()),
            Err(err) => err.report().map(|report| report.audit.as_slice()),
        };
        let actual = serde_json::to_value(report.unwrap_or_default()).unwrap();
        if !audit_matches(&actual, expected) {
            problems.push(format!(
                "audit {actual}, expected {}",
                Value::Array(expected.clone())
            ));
        }
    }
    // Every call's usage records whom it was for: the case's context, null when none.
    if let Some(usage) = usage {
        let want = call.context.clone().unwrap_or(Value::Null);
        if usage.context != want {
            problems.push(format!("usage context {}, expected {want}", usage.context));
        }
    }
    match (&result, &call.error) {
        (Ok(out), None) => {
            if let Some(expected) = &call.output {
                if out.output != expected.as_bytes() {
                    problems.push(format!(
                        "output {:?}, expected {expected:?}",
                        String::from_utf8_lossy(&out.output)
                    ));
                }
            }
            if let Some(expected) = &call.output_json {
                match serde_json::from_slice::<Value>(&out.output) {
                    Ok(actual) if actual == *expected => {}
                    Ok(actual) => {
                        problems.push(format!("output_json {actual}, expected {expected}"))
                    }
                    Err(err) => problems.push(format!(
                        "output is not JSON ({err}): {:?}",
                        String::from_utf8_lossy(&out.output)
                    )),
                }
            }
            if let Some(expected) = &call.logs {
                let actual = serde_json::to_value(&out.logs).unwrap();
                if actual != Value::Array(expected.clone()) {
                    problems.push(format!(
                        "logs {actual}, expected {}",
                        Value::Array(expected.clone())
                    ));
                }
            }
            problems.extend(check_fuel(
                key,
                out.usage.fuel_consumed,
                fuel,
                expected_fuel,
            ));
        }
        (Ok(out), Some(code)) => problems.push(format!(
            "succeeded with {:?}, expected error {code}",
            String::from_utf8_lossy(&out.output)
        )),
        (Err(err), None) => problems.push(format!("failed with {err}, expected success")),
        (Err(err), Some(code)) => problems.extend(check_error(err, code, call)),
    }
    problems
}

/// True when `actual` (the call's audit entries) has as many entries as `expected` and
/// each holds every field its expected entry names, with that value.
fn audit_matches(actual: &Value, expected: &[Value]) -> bool {
    let actual = actual.as_array().map(Vec::as_slice).unwrap_or_default();
    actual.len() == expected.len()
        && actual.iter().zip(expected).all(|(entry, want)| {
            want.as_object().is_some_and(|fields| {
                fields
                    .iter()
                    .all(|(key, value)| entry.get(key) == Some(value))
            })
        })
}

fn check_error(err: &Error, code: &str, call: &Call) -> Vec<String> {
    let mut problems = Vec::new();
    if err.code() != code {
        problems.push(format!("error {err}, expected code {code}"));
    }
    if let Some(fragment) = &call.message_contains {
        if !err.message().contains(fragment.as_str()) {
            problems.push(format!("message {:?} lacks {fragment:?}", err.message()));
        }
    }
    if let Some(want) = call.return_code {
        if err.return_code() != Some(want) {
            problems.push(format!(
                "return code {:?}, expected {want}",
                err.return_code()
            ));
        }
    }
    problems
}

/// Where a case's pack comes from: a file, or an Extism manifest as JSON text.
enum Source {
    File(PathBuf),
    ExtismManifest(String),
}

fn pack_source(case: &Case) -> Source {
    match (&case.pack, &case.pack_file, &case.extism_manifest) {
        (Some(name), None, None) => Source::File(support::pack_path(name)),
        (None, Some(file), None) => Source::File(conformance_dir().join(file)),
        (None, None, Some(manifest)) => {
            Source::ExtismManifest(with_dist_paths(manifest).to_string())
        }
        _ => panic!(
            "{}: give exactly one of pack, pack_file and extism_manifest",
            case.name
        ),
    }
}

/// The manifest with each `wasm[].path` taken as a file in `plugins/dist/` and its
/// `allowed_paths` made absolute.
fn with_dist_paths(manifest: &Value) -> Value {
    let mut manifest = manifest.clone();
    absolute_mounts(&mut manifest);
    if let Some(Value::Array(modules)) = manifest.get_mut("wasm") {
        for module in modules {
            if let Some(Value::String(path)) = module.get_mut("path") {
                *path = support::repo_root()
                    .join("plugins/dist")
                    .join(&*path)
                    .display()
                    .to_string();
            }
        }
    }
    manifest
}

/// Makes each host path of `holder["allowed_paths"]` (after an optional `ro:`) absolute,
/// reading it relative to the conformance folder.
fn absolute_mounts(holder: &mut Value) {
    let Some(Value::Object(paths)) = holder.get_mut("allowed_paths") else {
        return;
    };
    let mounts = std::mem::take(paths);
    for (source, guest) in mounts {
        let (prefix, host) = match source.strip_prefix("ro:") {
            Some(host) => ("ro:", host),
            None => ("", source.as_str()),
        };
        let host = conformance_dir().join(host).display().to_string();
        paths.insert(format!("{prefix}{host}"), guest);
    }
}

/// The engines every case runs on, by their option name.
const ENGINES: [&str; 2] = ["native", "extism"];

/// Fuel per engine, then per case key.
type FuelTable = BTreeMap<String, BTreeMap<String, u64>>;

/// The key-value backends a case with a `kv` option runs on, in order: the two every host
/// runs, then Redis (crate packhost-redis), on a server this runner starts.
const KV_BACKENDS: [&str; 3] = ["memory", "sqlite", "redis"];

/// The URL of the Redis server of this run.
static REDIS_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The case's options with `engine` set, unless the case chose one itself, and for a case
/// with a `kv` option, `kv.backend` and a fresh `kv.path` (a new store name for `memory`,
/// a new file for `sqlite`) unless the case chose them.
fn options_for(case: &Case, engine: &str, kv_backend: &str) -> Value {
    static FRESH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let mut options = case
        .options
        .clone()
        .unwrap_or_else(|| Value::Object(Default::default()));
    absolute_mounts(&mut options);
    if let Value::Object(map) = &mut options {
        map.entry("engine")
            .or_insert_with(|| Value::String(engine.to_string()));
        if let Some(Value::Object(kv)) = map.get_mut("kv") {
            let fresh = FRESH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            kv.entry("backend")
                .or_insert_with(|| Value::String(kv_backend.to_string()));
            let path = match kv_backend {
                "sqlite" => kv_folder()
                    .join(format!("{fresh}.sqlite3"))
                    .display()
                    .to_string(),
                // A memory store's name; for Redis, the prefix of every key of the store.
                _ => format!("conformance-{fresh}"),
            };
            kv.entry("path").or_insert(Value::String(path));
            if kv_backend == "redis" {
                let url = REDIS_URL.get().expect("the runner started redis").clone();
                kv.entry("url").or_insert(Value::String(url));
            }
        }
    }
    options
}

/// A folder of this run's sqlite stores.
fn kv_folder() -> &'static Path {
    static FOLDER: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FOLDER.get_or_init(|| support::scratch_folder("conformance-kv"))
}

/// The backends `case` runs on: each KV backend for a case with a `kv` option, else one run.
fn kv_backends(case: &Case) -> &'static [&'static str] {
    let has_kv = case
        .options
        .as_ref()
        .is_some_and(|options| options.get("kv").is_some_and(Value::is_object));
    if has_kv {
        &KV_BACKENDS
    } else {
        &["none"]
    }
}

/// A flow case: its packs loaded with the case's options (and the suite's host functions
/// when it asks), the flow read, checked against them and run once.
fn run_flow_case(
    case: &Case,
    engine: &str,
    kv_backend: &str,
    fuel: &mut BTreeMap<String, u64>,
    expected_fuel: &BTreeMap<String, u64>,
) -> Vec<String> {
    let options = options_for(case, engine, kv_backend);
    let mut packs = BTreeMap::new();
    for (name, sample) in &case.flow_packs {
        let functions = if case.host_functions {
            support::conformance_functions()
        } else {
            Vec::new()
        };
        let loaded = PackOptions::from_value(options.clone()).and_then(|options| {
            Pack::load_file_with(support::pack_path(sample), options, functions)
        });
        match loaded {
            Ok(pack) => packs.insert(name.clone(), pack),
            Err(err) => return vec![format!("loading {sample} failed with {err}")],
        };
    }
    let call = &case.call;
    let call_options = CallOptions {
        context: call.context.clone().unwrap_or(Value::Null),
        ..CallOptions::default()
    };
    let input = case.flow_input.clone().unwrap_or(Value::Null);
    let result = Flow::from_value(case.flow.clone().expect("a flow case"))
        .and_then(|flow| flow.check(&packs).map(|()| flow))
        .and_then(|flow| flow.run(&packs, input, &call_options));
    let out = match (result, &call.error) {
        (Err(err), Some(code)) => return check_error(&err, code, call),
        (Err(err), None) => return vec![format!("failed with {err}, expected success")],
        (Ok(out), Some(code)) => {
            return vec![format!(
                "succeeded with {}, expected error {code}",
                out.output
            )]
        }
        (Ok(out), None) => out,
    };
    let mut problems = Vec::new();
    if let Some(expected) = &call.output_json {
        if out.output != *expected {
            problems.push(format!("output_json {}, expected {expected}", out.output));
        }
    }
    if let Some(expected) = &case.steps {
        let actual: Vec<Value> = out
            .steps
            .iter()
            .map(|step| serde_json::json!({"id": step.id, "status": step.status}))
            .collect();
        if actual != *expected {
            problems.push(format!("steps {actual:?}, expected {expected:?}"));
        }
    }
    let want_context = call_options.context;
    let contexts = out
        .steps
        .iter()
        .filter_map(|step| step.usage.as_ref())
        .map(|usage| &usage.context);
    if let Some(other) = std::iter::once(&out.usage.context)
        .chain(contexts)
        .find(|c| **c != want_context)
    {
        problems.push(format!("usage context {other}, expected {want_context}"));
    }
    problems.extend(check_fuel(
        &case.name,
        out.usage.fuel_consumed,
        case.fuel_pinned.then_some(fuel),
        expected_fuel,
    ));
    problems
}

/// Records the fuel a successful call (or flow run) burnt under `key`, and unless blessing,
/// what differs from `fuel.json`'s entry. Without `fuel` (a case whose fuel is not pinned)
/// nothing is recorded, and the call need only have burnt some.
fn check_fuel(
    key: &str,
    burnt: u64,
    fuel: Option<&mut BTreeMap<String, u64>>,
    expected_fuel: &BTreeMap<String, u64>,
) -> Option<String> {
    let Some(fuel) = fuel else {
        return (burnt == 0).then(|| "no fuel burnt".to_string());
    };
    fuel.insert(key.to_string(), burnt);
    if blessing() {
        return None;
    }
    match expected_fuel.get(key) {
        Some(&want) if want == burnt => None,
        Some(&want) => Some(format!("fuel {burnt}, expected {want}")),
        None => Some("no fuel.json entry (run with PACKHOST_BLESS=1)".to_string()),
    }
}

fn run_case(
    case: &Case,
    engine: &str,
    kv_backend: &str,
    fuel: &mut BTreeMap<String, u64>,
    expected_fuel: &BTreeMap<String, u64>,
) -> Vec<String> {
    if case.flow.is_some() {
        return run_flow_case(case, engine, kv_backend, fuel, expected_fuel);
    }
    let options = options_for(case, engine, kv_backend);
    let functions = if case.host_functions {
        support::conformance_functions()
    } else {
        Vec::new()
    };
    let load = |source: Source, functions| {
        PackOptions::from_value(options.clone()).and_then(|options| match source {
            Source::File(location) => Pack::load_file_with(location, options, functions),
            Source::ExtismManifest(json) => Pack::load_extism_manifest(&json, options, functions),
        })
    };
    let loaded = load(pack_source(case), functions);
    let pack = match loaded {
        Ok(pack) => pack,
        Err(err) => {
            return match &case.call.error {
                Some(code) => check_error(&err, code, &case.call),
                None => vec![format!("load failed with {err}")],
            };
        }
    };
    let mut problems = Vec::new();
    if let Some(expected) = &case.actions {
        if pack.actions() != *expected {
            problems.push(format!(
                "actions {:?}, expected {expected:?}",
                pack.actions()
            ));
        }
    }
    if case.call.export.is_some() {
        problems.extend(check_call(
            &pack,
            &case.name,
            &case.call,
            case.fuel_pinned.then_some(&mut *fuel),
            expected_fuel,
        ));
    } else if case.call.error.is_some() {
        problems.push(format!("loaded, expected error {:?}", case.call.error));
    }
    for (index, call) in case.then.iter().enumerate() {
        let key = format!("{}/then/{index}", case.name);
        let other = call
            .pack
            .as_ref()
            .map(|name| load(Source::File(support::pack_path(name)), Vec::new()));
        let target = match &other {
            None => &pack,
            Some(Ok(other)) => other,
            Some(Err(err)) => {
                problems.push(format!(
                    "then[{index}]: loading {:?} failed with {err}",
                    call.pack
                ));
                continue;
            }
        };
        problems.extend(
            check_call(
                target,
                &key,
                call,
                case.fuel_pinned.then_some(&mut *fuel),
                expected_fuel,
            )
            .into_iter()
            .map(|p| format!("then[{index}]: {p}")),
        );
    }
    problems
}

#[test]
fn every_conformance_case_passes() {
    let redis = packhost_redis::LocalServer::start()
        .expect("redis-server runs (`make setup` installs Debian's redis-server)");
    REDIS_URL.get_or_init(|| redis.url());
    packhost_redis::register();
    let fuel_file = conformance_dir().join("fuel.json");
    let expected_fuel: FuelTable = std::fs::read_to_string(&fuel_file)
        .ok()
        .map(|text| serde_json::from_str(&text).expect("fuel.json maps engine, then case, to fuel"))
        .unwrap_or_default();
    let mut fuel = FuelTable::new();
    let mut failures = Vec::new();
    let cases = load_cases();
    let mut names = std::collections::HashSet::new();
    for (file, case) in &cases {
        assert!(
            case.name.starts_with(&format!("{file}/")),
            "{} should start with {file}/",
            case.name
        );
        assert!(
            names.insert(case.name.clone()),
            "case name {} is used twice",
            case.name
        );
        for engine in ENGINES {
            let expected = expected_fuel.get(engine).cloned().unwrap_or_default();
            let recorded = fuel.entry(engine.to_string()).or_default();
            for backend in kv_backends(case) {
                let label = match *backend {
                    "none" => engine.to_string(),
                    kv => format!("{engine}, kv {kv}"),
                };
                for problem in run_case(case, engine, backend, recorded, &expected) {
                    failures.push(format!("{} [{label}]: {problem}", case.name));
                }
            }
        }
    }
    if blessing() {
        let text = serde_json::to_string_pretty(&fuel).unwrap() + "\n";
        std::fs::write(&fuel_file, text).expect("fuel.json is writable");
    }
    println!(
        "{} conformance cases on {} engines, {} failures",
        cases.len(),
        ENGINES.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "conformance failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_error_code_has_a_case() {
    let expected: std::collections::BTreeSet<String> = load_cases()
        .iter()
        .flat_map(|(_, case)| std::iter::once(&case.call).chain(&case.then))
        .filter_map(|call| call.error.clone())
        .collect();
    // `internal` is a packhost bug by definition; no data can (or should) produce it.
    let missing: Vec<_> = ERROR_CODES
        .iter()
        .filter(|code| **code != "internal" && !expected.contains(**code))
        .collect();
    assert!(
        missing.is_empty(),
        "error codes without a conformance case: {missing:?}"
    );
}

#[test]
fn fixture_modules_match_their_wat_sources() {
    let fixtures = conformance_dir().join("fixtures");
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let source = entry.unwrap().path();
        let file = file_name(&source);
        let (built, target) = if let Some(name) = file.strip_suffix(".core.wat") {
            // A component: its core module, its world (`NAME.wit`) and its manifest.
            let manifest = std::fs::read_to_string(fixtures.join(format!("{name}.manifest.json")))
                .unwrap_or_else(|err| panic!("{name}.manifest.json: {err}"));
            (
                support::component_fixture(name, Some(&manifest)),
                fixtures.join(format!("{name}.wasm")),
            )
        } else if source.extension().is_some_and(|ext| ext == "wat") {
            let built = wat::parse_file(&source)
                .unwrap_or_else(|err| panic!("{}: {err}", source.display()));
            (built, source.with_extension("wasm"))
        } else {
            continue;
        };
        if blessing() {
            std::fs::write(&target, &built).unwrap();
        } else if std::fs::read(&target).ok().as_deref() != Some(&built[..]) {
            stale.push(file_name(&target));
        }
    }
    assert!(
        stale.is_empty(),
        "fixtures out of date with their .wat (run with PACKHOST_BLESS=1): {stale:?}"
    );
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}
