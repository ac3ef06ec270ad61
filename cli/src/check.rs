//! `packhost check`: what a pack's author looks at before publishing it. The pack loads, its
//! manifest is embedded and complete (a description for the pack and each action, a schema
//! for each JSON payload), it fits a size budget and its fixture cases pass; its imports and
//! what it asks the host for are summarised for whoever grants them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use packhost::{Encoding, Pack, PackOptions};

/// The size budget when none is given: a pack is loaded into every host that runs it, and
/// the language packs of this project's samples stay well under it.
pub(crate) const DEFAULT_MAX_SIZE: u64 = 1024 * 1024;

/// Lints the pack at `path`; prints a line per check and returns how many failed.
pub(crate) fn run(
    path: &Path,
    max_size: u64,
    fixtures: &[PathBuf],
    options: PackOptions,
    load: impl Fn(&Path, PackOptions) -> packhost::Result<Pack> + Copy,
) -> usize {
    println!("checking {}", path.display());
    let pack = match load(path, options) {
        Ok(pack) => pack,
        Err(err) => {
            println!("FAIL  loads: error[{}]: {}", err.code(), err.message());
            return 1;
        }
    };
    let mut failed = 0;
    let mut report = |passed: bool, line: String| {
        println!("{}  {line}", if passed { "ok  " } else { "FAIL" });
        failed += usize::from(!passed);
    };
    let manifest = pack.manifest();
    report(
        true,
        format!(
            "loads: {} {}, {} actions",
            manifest.name,
            manifest.version,
            manifest.actions.len()
        ),
    );
    report(
        pack.has_embedded_manifest(),
        if pack.has_embedded_manifest() {
            "manifest embedded".to_string()
        } else {
            "no manifest embedded: hosts only see export names (build with `packhost build` \
             or `packhost embed`)"
                .to_string()
        },
    );
    let gaps = manifest_gaps(manifest);
    if gaps.is_empty() {
        report(
            true,
            "manifest complete: descriptions for the pack and each action, schemas for JSON"
                .to_string(),
        );
    }
    for gap in gaps {
        report(false, gap);
    }
    let size = pack.module_info().size as u64;
    report(
        size <= max_size,
        format!(
            "size {size} bytes, budget {max_size} bytes{}",
            if size > max_size {
                " (`packhost build --release` makes the smallest pack)"
            } else {
                ""
            }
        ),
    );
    for line in import_summary(pack.module_info()) {
        println!("info  imports {line}");
    }
    for (label, value) in crate::asks_for(&manifest.capabilities) {
        if let Some(value) = value {
            println!("info  asks for {label}: {value}");
        }
    }
    println!("fixtures");
    match crate::fixtures::run(path, fixtures, load) {
        Ok(0) => report(true, "fixtures pass".to_string()),
        Ok(count) => report(false, format!("{count} fixture case(s) failed")),
        Err(message) => report(false, format!("fixtures: {message}")),
    }
    failed
}

/// What a publishable manifest lacks: a line per gap.
fn manifest_gaps(manifest: &packhost::PackManifest) -> Vec<String> {
    let mut gaps = Vec::new();
    if manifest.description.trim().is_empty() {
        gaps.push("the pack has no description".to_string());
    }
    if manifest.actions.is_empty() {
        gaps.push("the pack has no actions".to_string());
    }
    for action in &manifest.actions {
        if action.description.trim().is_empty() {
            gaps.push(format!("action {} has no description", action.name));
        }
        for (side, spec) in [("input", &action.input), ("output", &action.output)] {
            if spec.encoding == Encoding::Json && spec.schema.is_none() {
                gaps.push(format!(
                    "action {}: its JSON {side} has no schema",
                    action.name
                ));
            }
        }
    }
    gaps
}

/// The imports, a line per module with the names it lends: what a host must provide.
fn import_summary(info: &packhost::ModuleInfo) -> Vec<String> {
    let mut by_module: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for import in &info.imports {
        by_module
            .entry(import.module.as_str())
            .or_default()
            .push(import.name.as_str());
    }
    by_module
        .into_iter()
        .map(|(module, names)| {
            let note = match module {
                packhost::EXTISM_ENV => " (the Extism ABI, lent by every host)",
                "wasi_snapshot_preview1" => " (runs only where the host sets allow_wasi)",
                _ => "",
            };
            format!("{module}{note}: {}", names.join(", "))
        })
        .collect()
}
