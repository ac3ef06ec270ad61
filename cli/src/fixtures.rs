//! `packhost test`: a pack's fixture cases, in the conformance suite's format, run against
//! the pack, with what each failing case expected and got.
//!
//! A fixture file is `{"cases": [...]}`; each case names an `export`, gives its `input`, and
//! expects one of `output` (the exact text), `output_json` (equal as JSON, key order aside)
//! or `error` (a stable code, optionally with `message_contains` and `return_code`), and
//! optionally the call's `logs` and a `max_fuel` bound. `options` are load options, as for
//! `packhost call`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use packhost::{CallOptions, Pack, PackOptions};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFile {
    cases: Vec<Case>,
}

/// One case of a fixture file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// Load options, as `packhost call --options` takes them.
    #[serde(default)]
    options: Option<Value>,
    export: String,
    #[serde(default)]
    input: String,
    /// The call's `context`, which host functions and key-value storage see.
    #[serde(default)]
    context: Option<Value>,
    output: Option<String>,
    output_json: Option<Value>,
    error: Option<String>,
    message_contains: Option<String>,
    return_code: Option<i32>,
    /// The call's log lines, each `{"level": ..., "message": ...}`, in order.
    logs: Option<Vec<Value>>,
    /// The most fuel the call may burn.
    max_fuel: Option<u64>,
}

/// What went wrong with one case: a line each.
type Problems = Vec<String>;

/// Runs the cases in `fixtures` (files, or folders whose `*.json` files are read) against
/// the pack at `pack`, loaded by `load`; prints a line per case and the expected and actual
/// values of each failing one. Returns how many cases failed.
///
/// # Errors
/// A message for fixture files that cannot be found or read, or hold no cases.
pub(crate) fn run(
    pack: &Path,
    fixtures: &[PathBuf],
    load: impl Fn(&Path, PackOptions) -> packhost::Result<Pack>,
) -> Result<usize, String> {
    let mut files = Vec::new();
    for fixture in fixtures {
        if !fixture.exists() {
            return Err(format!(
                "{}: no such fixture file or folder (name the fixture files or folders, or \
                 keep the cases in tests/)",
                fixture.display()
            ));
        }
        if fixture.is_dir() {
            let found = crate::project::files_with_extension(fixture, "json")
                .map_err(|err| format!("{}: {err}", fixture.display()))?;
            files.extend(found);
        } else {
            files.push(fixture.clone());
        }
    }
    let mut cases = Vec::new();
    for file in &files {
        let text =
            std::fs::read_to_string(file).map_err(|err| format!("{}: {err}", file.display()))?;
        let parsed: FixtureFile = serde_json::from_str(&text)
            .map_err(|err| format!("{}: not a fixture file: {err}", file.display()))?;
        cases.extend(parsed.cases);
    }
    if cases.is_empty() {
        return Err(format!(
            "no fixture cases in {}",
            fixtures
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // One load per distinct set of options.
    let mut packs: BTreeMap<String, packhost::Result<Pack>> = BTreeMap::new();
    let mut failed = 0;
    for case in &cases {
        let options = case
            .options
            .clone()
            .unwrap_or(Value::Object(Default::default()));
        let loaded = packs.entry(options.to_string()).or_insert_with(|| {
            PackOptions::from_value(options).and_then(|options| load(pack, options))
        });
        let problems = match loaded {
            Ok(pack) => check(pack, case),
            Err(err) => vec![format!(
                "the pack did not load: error[{}]: {}",
                err.code(),
                err.message()
            )],
        };
        if problems.is_empty() {
            println!("ok    {}", case.name);
        } else {
            failed += 1;
            println!("FAIL  {}", case.name);
            for problem in problems {
                println!("      {problem}");
            }
        }
    }
    println!(
        "{} cases: {} passed, {failed} failed",
        cases.len(),
        cases.len() - failed
    );
    Ok(failed)
}

/// Calls the case's export and compares what came back with what the case expects.
fn check(pack: &Pack, case: &Case) -> Problems {
    let options = CallOptions {
        context: case.context.clone().unwrap_or(Value::Null),
        ..CallOptions::default()
    };
    let result = pack.call_with_options(&case.export, case.input.as_bytes(), &options);
    let mut problems = Vec::new();
    let (usage, logs) = crate::usage_and_logs(&result);
    match (&result, &case.error) {
        (Ok(out), None) => {
            if let Some(expected) = &case.output {
                let actual = String::from_utf8_lossy(&out.output);
                if actual != *expected {
                    problems.push(format!("expected output {expected:?}"));
                    problems.push(format!("  actual output {actual:?}"));
                }
            }
            if let Some(expected) = &case.output_json {
                match serde_json::from_slice::<Value>(&out.output) {
                    Ok(actual) if actual == *expected => {}
                    Ok(actual) => {
                        problems.push(format!("expected JSON {expected}"));
                        problems.push(format!("  actual JSON {actual}"));
                    }
                    Err(err) => problems.push(format!(
                        "expected JSON {expected}, got output that is not JSON ({err}): {:?}",
                        String::from_utf8_lossy(&out.output)
                    )),
                }
            }
        }
        (Ok(out), Some(code)) => problems.push(format!(
            "expected error[{code}], the call succeeded with output {:?}",
            String::from_utf8_lossy(&out.output)
        )),
        (Err(err), None) => problems.push(format!(
            "expected success, the call failed: error[{}]: {}",
            err.code(),
            err.message()
        )),
        (Err(err), Some(code)) => {
            if err.code() != code {
                problems.push(format!(
                    "expected error[{code}], got error[{}]: {}",
                    err.code(),
                    err.message()
                ));
            }
            if let Some(part) = &case.message_contains {
                if !err.message().contains(part.as_str()) {
                    problems.push(format!(
                        "expected a message containing {part:?}, got {:?}",
                        err.message()
                    ));
                }
            }
            if case.return_code.is_some() && err.return_code() != case.return_code {
                problems.push(format!(
                    "expected return code {:?}, got {:?}",
                    case.return_code,
                    err.return_code()
                ));
            }
        }
    }
    if let Some(expected) = &case.logs {
        let actual: Vec<Value> = logs
            .iter()
            .map(|line| serde_json::json!({"level": line.level.as_str(), "message": line.message}))
            .collect();
        if actual != *expected {
            problems.push(format!("expected logs {}", Value::Array(expected.clone())));
            problems.push(format!("  actual logs {}", Value::Array(actual)));
        }
    }
    if let (Some(most), Some(usage)) = (case.max_fuel, usage) {
        if usage.fuel_consumed > most {
            problems.push(format!(
                "expected at most {most} fuel, the call burnt {}",
                usage.fuel_consumed
            ));
        }
    }
    problems
}
