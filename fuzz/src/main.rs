//! `packhost-fuzz`: runs fuzz targets for a bounded time on random bytes, and keeps every
//! case that finds something in `fuzz/regressions/` (replayed by the crate's tests).
//!
//! ```text
//! packhost-fuzz [all|load|abi|differential] [--seconds N] [--seed S]
//! packhost-fuzz explain fuzz/regressions/<target>-<hash>.bin
//! ```
//!
//! Exits 1 after writing the first finding; `make fuzz` runs every target.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use packhost_fuzz::{run_case, Corpus, Target};

/// Prints how each engine runs the guest a kept case generates, and writes the guest
/// beside the case (`.wasm`), for `wasm-tools print`.
fn explain(file: Option<&String>) -> ExitCode {
    let Some(file) = file else {
        eprintln!("packhost-fuzz explain: name a kept case");
        return ExitCode::from(2);
    };
    let path = Path::new(file);
    let target = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.split('-').next())
        .and_then(Target::from_name);
    let (Some(target), Ok(data)) = (target, std::fs::read(path)) else {
        eprintln!("packhost-fuzz explain: {file} is not a readable <target>-<hash>.bin case");
        return ExitCode::from(2);
    };
    let Some((module, lines)) = packhost_fuzz::explain(target, &data) else {
        eprintln!("packhost-fuzz explain: {file} generates no guest");
        return ExitCode::FAILURE;
    };
    let wasm = path.with_extension("wasm");
    std::fs::write(&wasm, module).ok();
    println!("guest written to {}", wasm.display());
    for line in lines {
        println!("{line}");
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|at| args.get(at + 1))
            .and_then(|value| value.parse::<u64>().ok())
    };
    let seconds = flag("--seconds").unwrap_or(60);
    let seed = flag("--seed").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| since.as_nanos() as u64)
    });
    if args.first().map(String::as_str) == Some("explain") {
        return explain(args.get(1));
    }
    let targets: Vec<Target> = match args.first().map(String::as_str) {
        None | Some("all") => Target::ALL.to_vec(),
        Some(name) => match Target::from_name(name) {
            Some(target) => vec![target],
            None => {
                eprintln!("packhost-fuzz: unknown target {name:?} (all, load, abi, differential)");
                return ExitCode::from(2);
            }
        },
    };
    // A pack's own panics (a handler, an engine bug) are caught per case; their default
    // report would only bury the summary.
    std::panic::set_hook(Box::new(|_| {}));
    let corpus = Corpus::load();
    let mut random = SplitMix(seed);
    for target in targets {
        let started = Instant::now();
        let mut cases = 0u64;
        while started.elapsed() < Duration::from_secs(seconds) {
            let data = random.bytes();
            cases += 1;
            // Kept before it runs, so that a case that kills the process (a crash no panic
            // handler sees) is left behind too; removed again once it found nothing.
            let file = keep(target, &data);
            if let Some(finding) = run_case(target, &data, &corpus) {
                eprintln!(
                    "packhost-fuzz {}: {} (case kept in {})",
                    target.name(),
                    finding.0,
                    file.display()
                );
                return ExitCode::FAILURE;
            }
            std::fs::remove_file(&file).ok();
        }
        println!(
            "packhost-fuzz {}: {cases} cases in {seconds} s, nothing found (seed {seed})",
            target.name()
        );
    }
    ExitCode::SUCCESS
}

/// Writes a finding's input to `fuzz/regressions/<target>-<hash>.bin`.
fn keep(target: Target, data: &[u8]) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3)
    });
    let file = dir.join(format!("{}-{hash:016x}.bin", target.name()));
    std::fs::create_dir_all(&dir).ok();
    std::fs::write(&file, data).ok();
    file
}

/// SplitMix64: a small, fast generator of case bytes; fuzzing needs variety, not secrecy.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Between 16 bytes and 16 KiB, sizes spread over orders of magnitude.
    fn bytes(&mut self) -> Vec<u8> {
        let len = 16usize << (self.next() % 11);
        let len = 16 + (self.next() as usize % len);
        let mut data = Vec::with_capacity(len + 8);
        while data.len() < len {
            data.extend_from_slice(&self.next().to_le_bytes());
        }
        data.truncate(len);
        data
    }
}
