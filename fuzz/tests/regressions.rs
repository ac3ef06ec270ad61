//! Every case the fuzzers ever kept (`fuzz/regressions/<target>-<hash>.bin`) stays fixed:
//! each is run again on its target and must find nothing.

use packhost_fuzz::{run_case, Corpus, Target};

#[test]
fn every_kept_case_finds_nothing() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let corpus = Corpus::load();
    let mut replayed = 0;
    let mut findings = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let path = entry.expect("readable entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(target) = name.split('-').next().and_then(Target::from_name) else {
            continue;
        };
        let data = std::fs::read(&path).expect("a kept case is readable");
        if let Some(finding) = run_case(target, &data, &corpus) {
            findings.push(format!("{name}: {}", finding.0));
        }
        replayed += 1;
    }
    assert!(
        findings.is_empty(),
        "{replayed} kept cases replayed; found again:\n{}",
        findings.join("\n")
    );
}

#[test]
fn every_target_runs_a_case_of_plain_bytes() {
    let corpus = Corpus::load();
    let data: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for target in Target::ALL {
        assert_eq!(run_case(target, &data, &corpus), None, "{}", target.name());
    }
}
