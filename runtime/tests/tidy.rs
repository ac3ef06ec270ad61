//! House rules that code review would otherwise have to remember: every Rust module in the
//! repository opens with a `//!` line saying what it owns.

mod support;

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(
                name.as_ref(),
                "target" | "node_modules" | ".venv" | "vendor" | ".git" | "dist"
            ) {
                rust_files(&path, found);
            }
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

#[test]
fn every_rust_module_says_what_it_owns() {
    let root = support::repo_root();
    let mut files = Vec::new();
    for dir in ["runtime", "pdk", "cli", "plugins", "bindings"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found the sources");
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let first = text
                .lines()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("");
            !first.starts_with("//!")
        })
        .map(|path| path.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! opening line: {missing:?}"
    );
}

/// The `"version"` value of a JSON file's top level.
fn json_version(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["version"].as_str().unwrap_or_default().to_string()
}

#[test]
fn every_package_carries_one_version() {
    let root = support::repo_root();
    let version = env!("CARGO_PKG_VERSION");
    // The crates take theirs from the workspace, and the wheel from the Python binding's
    // crate (`dynamic = ["version"]` in pyproject.toml); the npm package and the gem say it
    // again, so they are checked here.
    assert_eq!(json_version(&root.join("package.json")), version);
    assert_eq!(json_version(&root.join("package-lock.json")), version);
    let ruby = std::fs::read_to_string(root.join("bindings/ruby/lib/packhost/version.rb")).unwrap();
    assert!(
        ruby.contains(&format!("VERSION = \"{version}\"")),
        "bindings/ruby/lib/packhost/version.rb does not say {version}"
    );
    let pyproject = std::fs::read_to_string(root.join("pyproject.toml")).unwrap();
    assert!(pyproject.contains("dynamic = [\"version\"]"));
}

/// Each package line `name vX [features]` of `cargo tree` for the given selection.
fn resolved_features(selection: &[&str]) -> std::collections::BTreeSet<String> {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--prefix", "none", "-e", "normal,build"])
        .args(["-f", "{p} [{f}]"])
        .args(selection)
        .current_dir(support::repo_root())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree {selection:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.replace(" (*)", "").replace(" (proc-macro)", ""))
        .filter(|line| !line.is_empty())
        .collect()
}

#[test]
fn every_package_resolves_the_core_dependencies_with_the_same_features() {
    // Cargo resolves features per selection, so a binding that enables one more feature of a
    // crate below wasmtime makes cargo compile wasmtime again for it (10 minutes per profile
    // on two cores). runtime/Cargo.toml names those features; this holds it complete: every
    // feature set a selection gives a package of the core's graph is one the core gives it.
    // (`cargo tree` does not say whether a line is built for the host or the target, so a
    // host-side set equal to a target-side one passes; the sets seen so far differ.)
    let core = resolved_features(&["-p", "packhost"]);
    let package_of = |line: &str| line.split(" [").next().unwrap_or_default().to_string();
    let core_packages: std::collections::BTreeSet<String> =
        core.iter().map(|line| package_of(line)).collect();
    // uniffi's generator (packhost-uniffi-bindgen) is a build tool outside this rule: it
    // does not link the core, and CI builds it on its own, never in one selection with it.
    let selections: [&[&str]; 7] = [
        &["-p", "packhost-node"],
        &["-p", "packhost-uniffi"],
        &["-p", "packhost-fuzz"],
        &["-p", "packhost-python"],
        &["-p", "packhost-cli"],
        &["-p", "packhost-ruby"],
        &[
            "--workspace",
            "--exclude",
            "packhost-ruby",
            "--exclude",
            "packhost-uniffi-bindgen",
            "-e",
            "dev",
        ],
    ];
    for selection in selections {
        let differing: Vec<String> = resolved_features(selection)
            .into_iter()
            .filter(|line| core_packages.contains(&package_of(line)) && !core.contains(line))
            // rb-sys's bindgen runs at build time only, with regex of its own features; the
            // core's regex crates are built for the target and are not affected.
            .filter(|line| !(selection == ["-p", "packhost-ruby"] && line.starts_with("regex-")))
            .collect();
        assert!(
            differing.is_empty(),
            "cargo tree {selection:?} resolves these differently from the core; name the \
             features in runtime/Cargo.toml: {differing:?}"
        );
    }
}
