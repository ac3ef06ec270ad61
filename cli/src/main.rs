//! The `packhost` command: write, build, test and check packs (`new`, `build`, `test`,
//! `check`), sign and verify them (`keygen`, `sign`, `verify`), publish them to OCI
//! registries and pull them into the local store (`push`, `pull`, `store`), and inspect,
//! call, validate and embed them. Wherever a pack is named, `oci://registry/name:tag` works
//! as well as a file.
//!
//! Exit status: 0 on success; 1 when a pack fails (its error code is printed on stderr as
//! `error[code]: message`), a fixture case or check fails, or a build fails or lacks its
//! toolchain; 2 for bad command-line use.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod check;
mod fixtures;
mod project;
mod registry;
mod scaffold;
mod signing;

use clap::{Parser, Subcommand};
use packhost::{Error, Pack, PackOptions};
use packhost_runner::RunnerConfig;
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "packhost",
    version,
    disable_version_flag = true,
    arg_required_else_help = true,
    about = "Write, build, test, check, run and inspect packhost packs (WebAssembly plugins on the Extism ABI)"
)]
struct Cli {
    /// Print the version; with --verbose, how this build was made (profile, optimisation,
    /// debug assertions, wasmtime).
    #[arg(short = 'V', long)]
    version: bool,
    /// With --version: print the build information too.
    #[arg(short, long, requires = "version")]
    verbose: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Show a pack's manifest, actions, imports, exports, size and hash.
    Inspect {
        /// The .wasm file, or an Extism manifest (.json) naming it.
        pack: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run one export of a pack and print its output.
    Call {
        /// The .wasm file, or an Extism manifest (.json) naming it.
        pack: PathBuf,
        /// The action to run (`pre`, `post` or any named action).
        export: String,
        /// The input text; without it, --input-file or stdin is read.
        input: Option<String>,
        /// Read the input from this file (`-` for stdin).
        #[arg(long, short = 'f', conflicts_with = "input")]
        input_file: Option<PathBuf>,
        /// Options as JSON, e.g. '{"limits": {"timeout_ms": 200}}'.
        #[arg(long, short = 'o')]
        options: Option<String>,
        /// Print the usage record as JSON on stderr.
        #[arg(long)]
        usage: bool,
        /// Print the pack's log lines on stderr.
        #[arg(long)]
        logs: bool,
    },
    /// Load packs and report whether each is valid.
    Validate {
        /// The .wasm files (or Extism manifests, .json).
        #[arg(required = true)]
        packs: Vec<PathBuf>,
    },
    /// Write a new pack project: one action, `pre` and `post`, fixture cases, a README and
    /// the language's build file; it builds and passes its tests as written.
    New {
        /// The pack's name, and the folder to create (lowercase letters, digits, '-', '_').
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum)]
        lang: project::Language,
        /// Rust: take the packhost-pdk crate from this folder (a packhost checkout's `pdk/`)
        /// instead of the checkout this command was built from, or crates.io. (C and
        /// AssemblyScript projects get a copy of their PDK, Python and JavaScript ones a copy
        /// of packhost's WIT.)
        #[arg(long, value_name = "FOLDER")]
        pdk: Option<PathBuf>,
    },
    /// Build the pack project in this folder (Rust, C, AssemblyScript, Python or JavaScript,
    /// told by its files): run its toolchain, embed the manifest, validate the pack and write
    /// it to dist/. Python and JavaScript packs are WebAssembly components.
    Build {
        /// The project's folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The smallest pack the toolchain makes (slower to build).
        #[arg(long)]
        release: bool,
    },
    /// Run a pack's fixture cases and show what each failing one expected and got; exit
    /// status 1 when any fails.
    Test {
        /// The .wasm file (or an Extism manifest, .json) then fixture files
        /// (`{"cases": [...]}`) or folders of them. Without them: the pack `packhost build`
        /// wrote to dist/, and the cases in tests/.
        #[arg(value_name = "PACK [FIXTURES]")]
        paths: Vec<PathBuf>,
    },
    /// Lint a pack before publishing: it loads, its manifest is embedded and complete, it
    /// fits the size budget and its fixture cases pass; its imports and requests are listed.
    Check {
        /// The .wasm file; default the pack `packhost build` wrote to dist/.
        pack: Option<PathBuf>,
        /// The fixture files or folders; default `tests`.
        #[arg(long = "fixtures", value_name = "PATH")]
        fixtures: Vec<PathBuf>,
        /// The size budget in bytes.
        #[arg(long, default_value_t = check::DEFAULT_MAX_SIZE)]
        max_size: u64,
    },
    /// Make an ed25519 key pair for signing packs: written to a file (mode 0600), its public
    /// key printed for hosts' `trusted_keys`.
    Keygen {
        /// Where to write the key pair (never overwritten).
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
    /// Sign a pack: its SHA-256, name and version, with a key from `packhost keygen`; the
    /// signature goes beside it (`PACK.sig`), where loading finds it.
    Sign {
        /// The .wasm file.
        pack: PathBuf,
        /// The key pair file.
        #[arg(long)]
        key: PathBuf,
        /// Where to write the signature; default `PACK.sig`.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// Check a pack's signature as a host requiring one by these keys would load it; exit
    /// status 1 with `error[untrusted_pack]` when it fails.
    Verify {
        /// The .wasm file.
        pack: PathBuf,
        /// A trusted public key (`ed25519:...`), or a file holding one or a key pair.
        #[arg(long = "trusted-key", value_name = "KEY", required = true)]
        trusted_keys: Vec<String>,
        /// The signature; default `PACK.sig`.
        #[arg(long)]
        signature: Option<PathBuf>,
    },
    /// Publish a pack to an OCI registry as a Wasm artifact, with its signature (`PACK.sig`)
    /// when it has one. Credentials: PACKHOST_REGISTRY_USERNAME and PACKHOST_REGISTRY_PASSWORD
    /// (or PACKHOST_REGISTRY_TOKEN), for the registry PACKHOST_REGISTRY_HOST names.
    Push {
        /// The .wasm file.
        pack: PathBuf,
        /// Where to: REGISTRY/NAME:TAG (`oci://` optional).
        reference: String,
        /// The signature to publish; default `PACK.sig` when it exists.
        #[arg(long)]
        signature: Option<PathBuf>,
    },
    /// Pull a pack from an OCI registry into the local store, every digest checked, and pin
    /// the reference to it (hosts loading `oci://REFERENCE` then use it offline).
    Pull {
        /// REGISTRY/NAME:TAG or REGISTRY/NAME@sha256:... (`oci://` optional).
        reference: String,
    },
    /// The local store of pulled packs ($PACKHOST_STORE, else ~/.local/share/packhost/store).
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Serve packs over HTTP (`POST /v1/execute`, `GET /v1/packs`, `/healthz`, `/readyz`,
    /// `/metrics`) until SIGTERM or SIGINT, then drain: calls in flight finish, new ones
    /// get 503. Tenants' tokens may come from PACKHOST_RUNNER_TOKENS (tenant=token,...).
    Serve {
        /// Packs to serve: .wasm files, folders of them, oci:// references (added to the
        /// config file's `packs`).
        packs: Vec<String>,
        /// A runner config file (JSON): listen, packs, options, pack_options, tenants,
        /// allow_anonymous, max_request_bytes, drain_timeout_ms, drain_grace_ms.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The address to listen on (default 127.0.0.1:8080, or the config file's).
        #[arg(long)]
        listen: Option<String>,
        /// Options every pack is loaded with, as JSON (in place of the config file's).
        #[arg(long)]
        options: Option<String>,
        /// A flow to serve at POST /v1/flows/NAME/execute: a definition file (.json,
        /// .yaml, .yml) or a folder of them; repeatable (added to the config file's `flows`).
        #[arg(long = "flow")]
        flows: Vec<String>,
    },
    /// Serve the actions of packs as Model Context Protocol tools over stdio (for an AI
    /// client that starts it): tool names, descriptions and input schemas from the
    /// manifests. `packhost serve` offers the same tools over HTTP at `/mcp`.
    Mcp {
        /// Packs to serve: .wasm files, folders of them, oci:// references.
        packs: Vec<String>,
        /// A runner config file (JSON), as for `serve`; its packs, options and pack_options count.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Options every pack is loaded with, as JSON.
        #[arg(long)]
        options: Option<String>,
    },
    /// Store a manifest in a module: generated by its own `__packhost_manifest` export
    /// (packhost-pdk's `pack!`), or read from a JSON file.
    Embed {
        /// The module cargo built.
        module: PathBuf,
        /// Where to write the pack.
        #[arg(long, short = 'o')]
        output: PathBuf,
        /// Use this manifest JSON instead of running the module's export.
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// List the stored packs with the references pinned to each.
    Ls {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove the packs no reference is pinned to.
    Gc,
    /// Unpin a reference (its pack goes at the next `gc` if nothing else pins it).
    Rm {
        /// The reference, as pulled.
        reference: String,
    },
}

/// A failure worth exiting non-zero for.
enum Failure {
    /// The pack or packhost failed.
    Pack(Error),
    /// The command line or the files around it were wrong.
    Usage(String),
    /// Fixture cases failed (each already reported).
    CasesFailed(usize),
    /// `packhost check` found problems (each already reported).
    ChecksFailed(usize),
    /// A pack project did not build: a missing toolchain (and what to install) or a failed
    /// step (whose own messages are already on stderr).
    Build(String),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Pack(err)
    }
}

fn main() -> ExitCode {
    // Like other Unix filters, stop quietly when the reader of stdout goes away
    // (`packhost inspect x.wasm | head`) instead of panicking on a broken pipe.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // extism reports every failed call at error level, with a backtrace; the command prints
    // the classified error itself, so by default only packhost's own warnings show.
    let filter = tracing_subscriber::EnvFilter::try_from_env("PACKHOST_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,extism=off,packhost::plugin=off")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    packhost_oci::register();
    let Some(command) = cli.command else {
        print_version(cli.verbose);
        return ExitCode::SUCCESS;
    };
    let outcome = match command {
        Command::Inspect { pack, json } => inspect(&pack, json),
        Command::Call {
            pack,
            export,
            input,
            input_file,
            options,
            usage,
            logs,
        } => call(&pack, &export, input, input_file, options, usage, logs),
        Command::Validate { packs } => validate(&packs),
        Command::New { name, lang, pdk } => {
            scaffold::new_project(&name, lang, pdk.as_deref()).map_err(Failure::Usage)
        }
        Command::Build { dir, release } => build(&dir, release),
        Command::Test { paths } => test(paths),
        Command::Check {
            pack,
            fixtures,
            max_size,
        } => check(pack, fixtures, max_size),
        Command::Keygen { output } => signing::keygen(&output),
        Command::Sign { pack, key, output } => signing::sign(&pack, &key, output.as_deref(), load),
        Command::Verify {
            pack,
            trusted_keys,
            signature,
        } => signing::verify(&pack, &trusted_keys, signature.as_deref(), load),
        Command::Push {
            pack,
            reference,
            signature,
        } => registry::push(&pack, &reference, signature.as_deref()),
        Command::Pull { reference } => registry::pull(&reference),
        Command::Serve {
            packs,
            config,
            listen,
            options,
            flows,
        } => runner_config(packs, flows, config.as_deref(), listen, options.as_deref())
            .and_then(|config| Ok(packhost_runner::run(config)?)),
        Command::Mcp {
            packs,
            config,
            options,
        } => runner_config(
            packs,
            Vec::new(),
            config.as_deref(),
            None,
            options.as_deref(),
        )
        .and_then(|config| Ok(packhost_runner::serve_mcp_stdio(config)?)),
        Command::Store { command } => match command {
            StoreCommand::Ls { json } => registry::list(json),
            StoreCommand::Gc => registry::gc(),
            StoreCommand::Rm { reference } => registry::unpin(&reference),
        },
        Command::Embed {
            module,
            output,
            manifest,
        } => embed(&module, &output, manifest.as_deref()),
    };
    let Err(failure) = outcome else {
        return ExitCode::SUCCESS;
    };
    let (status, message) = match failure {
        Failure::Pack(err) => (1, format!("error[{}]: {}", err.code(), err.message())),
        Failure::Usage(message) => (2, format!("packhost: {message}")),
        Failure::CasesFailed(count) => (1, format!("packhost: {count} fixture case(s) failed")),
        Failure::ChecksFailed(count) => (1, format!("packhost: {count} check(s) failed")),
        Failure::Build(message) => (1, format!("packhost build: {message}")),
    };
    eprintln!("{message}");
    ExitCode::from(status)
}

/// What a call reported, whether it succeeded or failed: its usage (none when it never
/// reached the pack) and its log lines.
fn usage_and_logs(
    result: &packhost::Result<packhost::CallOutput>,
) -> (Option<&packhost::Usage>, &[packhost::LogRecord]) {
    match result {
        Ok(out) => (Some(&out.usage), out.logs.as_slice()),
        Err(err) => (
            err.report().map(|report| &report.usage),
            err.report()
                .map_or(&[][..], |report| report.logs.as_slice()),
        ),
    }
}

/// `packhost test [PACK [FIXTURES...]]`.
fn test(paths: Vec<PathBuf>) -> Result<(), Failure> {
    let mut paths = paths.into_iter();
    let pack = pack_or_built(paths.next())?;
    println!("testing {}", pack.display());
    let fixtures = fixtures_or_default(paths.collect(), &pack);
    match fixtures::run(&pack, &fixtures, load).map_err(Failure::Usage)? {
        0 => Ok(()),
        failed => Err(Failure::CasesFailed(failed)),
    }
}

/// The pack named, or the one `packhost build` wrote to `dist/` here.
fn pack_or_built(pack: Option<PathBuf>) -> Result<PathBuf, Failure> {
    match pack {
        Some(pack) => Ok(pack),
        None => project::built_pack(Path::new(".")).map_err(Failure::Usage),
    }
}

/// The fixture paths given; else the `tests` folder of the project whose `dist/` holds
/// `pack`, or of this folder.
fn fixtures_or_default(fixtures: Vec<PathBuf>, pack: &Path) -> Vec<PathBuf> {
    if !fixtures.is_empty() {
        return fixtures;
    }
    let project_tests = pack
        .parent()
        .filter(|folder| folder.file_name().is_some_and(|name| name == "dist"))
        .and_then(Path::parent)
        .map(|project| project.join("tests"))
        .filter(|tests| tests.is_dir());
    vec![project_tests.unwrap_or_else(|| PathBuf::from("tests"))]
}

/// Options that let a pack import WASI: `build` and `check` judge packs that use it (a C
/// pack calling printf does) as any host that sets `allow_wasi` would run them.
fn wasi_allowed() -> PackOptions {
    PackOptions {
        allow_wasi: true,
        ..PackOptions::default()
    }
}

/// `packhost check [PACK] [--fixtures PATH]... [--max-size BYTES]`.
fn check(pack: Option<PathBuf>, fixtures: Vec<PathBuf>, max_size: u64) -> Result<(), Failure> {
    let pack = pack_or_built(pack)?;
    let fixtures = fixtures_or_default(fixtures, &pack);
    match check::run(&pack, max_size, &fixtures, wasi_allowed(), load) {
        0 => Ok(()),
        failed => Err(Failure::ChecksFailed(failed)),
    }
}

/// `packhost build [DIR] [--release]`: the toolchain, then the manifest embedded, the pack
/// validated and written to `DIR/dist/NAME.wasm`.
fn build(dir: &Path, release: bool) -> Result<(), Failure> {
    let language = project::Language::detect(dir).map_err(Failure::Usage)?;
    if let Some(missing) = project::missing_toolchain(language) {
        return Err(Failure::Build(missing));
    }
    let pack_bytes = project::build_pack(dir, language, release)?;
    let pack = Pack::load_with(
        &pack_bytes,
        wasi_allowed(),
        stand_ins_for(&packhost::ModuleInfo::read(&pack_bytes)?),
    )?;
    let dist = project::dist_dir(dir);
    let output = dist.join(project::pack_file_name(&pack.manifest().name));
    std::fs::create_dir_all(&dist)
        .map_err(|err| format!("{}: {err}", dist.display()))
        .and_then(|()| write_atomically(&output, &pack_bytes))
        .map_err(Failure::Build)?;
    let manifest = pack.manifest();
    println!(
        "built {} {} ({}, {}) -> {}",
        manifest.name,
        manifest.version,
        language.as_str(),
        if language.builds_components() {
            "component"
        } else if release {
            "release"
        } else {
            "debug"
        },
        output.display()
    );
    println!("size     {} bytes", pack_bytes.len());
    println!("sha256   {}", pack.id());
    print_actions(manifest);
    Ok(())
}

/// `packhost --version [--verbose]`: the version, and with --verbose the build record every
/// host reports (`packhost::build_info`).
fn print_version(verbose: bool) {
    let info = packhost::build_info();
    println!("packhost {}", info.version);
    if verbose {
        println!("profile: {}", info.profile);
        println!("opt-level: {}", info.opt_level);
        println!("debug-assertions: {}", info.debug_assertions);
        println!("wasmtime: {}", info.wasmtime);
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|err| Failure::Usage(format!("{}: {err}", path.display())))
}

/// Loads a pack as this command can: it lends no host functions, so each one the pack
/// imports is a stand-in that fails the call that reaches it. A `.json` file is an Extism
/// manifest naming the modules.
fn load(path: &Path, options: PackOptions) -> packhost::Result<Pack> {
    if path.extension().is_some_and(|ext| ext == "json") {
        let text = std::fs::read_to_string(path).map_err(|err| {
            packhost::Error::new(
                packhost::ErrorKind::Io,
                format!("{}: {err}", path.display()),
            )
        })?;
        let resolved = packhost::ExtismManifest::from_json(&text)?.resolve(options)?;
        let stand_ins = stand_ins_for(&*resolved.host_view()?);
        return Pack::load_resolved(resolved, stand_ins);
    }
    // A reference is looked up (pulled when not pinned yet) for its imports first; the load
    // then finds it pinned.
    let stand_ins = match std::fs::read(local_file(path)?) {
        Ok(bytes) => stand_ins_for(&packhost::ModuleInfo::read(&bytes)?),
        // Loading reports the unreadable file with its own `io` error.
        Err(_) => Vec::new(),
    };
    Pack::load_reference(path, options, stand_ins)
}

/// `path` when it is an `oci://` reference rather than a file.
fn oci_reference(path: &Path) -> Option<&str> {
    path.to_str().filter(|text| text.starts_with("oci://"))
}

/// The file a pack argument names: itself, or for an `oci://` reference the pack in the local
/// store (pulled and pinned if it was not there yet).
fn local_file(path: &Path) -> packhost::Result<PathBuf> {
    match oci_reference(path) {
        Some(reference) => Ok(packhost_oci::resolve(reference)?.path),
        None => Ok(path.to_path_buf()),
    }
}

/// A stand-in for each host function the module imports from `extism:host/user`, where
/// every Extism PDK puts them. An import from any other module is still refused: without a
/// host to say otherwise, it is more likely a mistake (or worse) than a host function.
fn stand_ins_for(module: &packhost::ModuleInfo) -> Vec<packhost::HostFunction> {
    let mut stand_ins = packhost::unavailable_host_functions(
        module,
        "the packhost command lends no host functions; embed the pack in a host that does",
    );
    stand_ins.retain(|function| function.namespace() == packhost::EXTISM_USER);
    stand_ins
}

fn inspect(path: &Path, as_json: bool) -> Result<(), Failure> {
    let pack = load(path, PackOptions::default())?;
    let info = pack.module_info();
    let manifest = pack.manifest();
    if as_json {
        let report = json!({
            "id": pack.id(),
            "size": info.size,
            "component": info.component,
            "manifest_embedded": pack.has_embedded_manifest(),
            "manifest": manifest,
            "imports": info.imports,
            "exports": info.exports,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(());
    }
    println!("{} {}", manifest.name, manifest.version);
    if !manifest.description.is_empty() {
        println!("  {}", manifest.description);
    }
    println!("sha256   {}", pack.id());
    println!("size     {} bytes", info.size);
    if info.component {
        println!("kind     WebAssembly component");
    }
    println!(
        "manifest {}",
        if pack.has_embedded_manifest() {
            "embedded"
        } else {
            "none (synthesized from exports)"
        }
    );
    print_actions(manifest);
    println!("asks for");
    for (label, value) in asks_for(&manifest.capabilities) {
        let value = value.unwrap_or_else(|| {
            if label == "kv storage" {
                "no"
            } else {
                "(none)"
            }
            .to_string()
        });
        println!("  {label:<11} {value}");
    }
    println!("imports");
    for import in &info.imports {
        if import.name.is_empty() {
            println!("  {} {}", import.kind, import.module);
        } else {
            println!("  {} {}::{}", import.kind, import.module, import.name);
        }
    }
    println!("exports");
    for export in &info.exports {
        println!("  {} {}", export.kind, export.name);
    }
    Ok(())
}

/// The actions, a line each: name, input and output encodings, description.
fn print_actions(manifest: &packhost::PackManifest) {
    println!("actions");
    for action in &manifest.actions {
        let encoding = |spec: &packhost::PayloadSpec| format!("{:?}", spec.encoding).to_lowercase();
        println!(
            "  {:<20} {} -> {}  {}",
            action.name,
            encoding(&action.input),
            encoding(&action.output),
            action.description
        );
    }
}

/// What a pack asks the host for, per kind of capability: a list, or `None` when it asks
/// for none of that kind.
fn asks_for(caps: &packhost::Capabilities) -> Vec<(&'static str, Option<String>)> {
    let functions: Vec<String> = caps
        .host_functions
        .iter()
        .map(|f| format!("{}::{}", f.namespace, f.name))
        .collect();
    let list = |items: &[String]| (!items.is_empty()).then(|| items.join(", "));
    vec![
        ("http hosts", list(&caps.http_hosts)),
        ("config keys", list(&caps.config)),
        ("secrets", list(&caps.secrets)),
        ("kv storage", caps.kv.then(|| "yes".to_string())),
        ("folders", list(&caps.paths)),
        ("host functions", list(&functions)),
    ]
}

/// `packhost serve` and `mcp`: the config file, then the command line's packs, address and
/// options over it, then the tokens of PACKHOST_RUNNER_TOKENS and PACKHOST_RUNNER_ADMIN_TOKEN.
fn runner_config(
    packs: Vec<String>,
    flows: Vec<String>,
    config: Option<&Path>,
    listen: Option<String>,
    options: Option<&str>,
) -> Result<RunnerConfig, Failure> {
    let mut config = match config {
        Some(file) => {
            let text = String::from_utf8(read_file(file)?)
                .map_err(|_| Failure::Usage(format!("{}: not UTF-8", file.display())))?;
            RunnerConfig::from_json(&text)?
        }
        None => RunnerConfig::default(),
    };
    config.packs.extend(packs);
    config.flows.extend(flows);
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(text) = options {
        config.options = serde_json::from_str(text)
            .map_err(|err| Failure::Usage(format!("--options: {err}")))?;
    }
    Ok(config.finish_from_env()?)
}

fn call(
    path: &Path,
    export: &str,
    input: Option<String>,
    input_file: Option<PathBuf>,
    options: Option<String>,
    show_usage: bool,
    show_logs: bool,
) -> Result<(), Failure> {
    let options = match options {
        Some(text) => PackOptions::from_json(&text)?,
        None => PackOptions::default(),
    };
    let input = match (input, input_file) {
        (Some(text), _) => text.into_bytes(),
        (None, Some(file)) if file != Path::new("-") => read_file(&file)?,
        (None, _) => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                Vec::new()
            } else {
                let mut bytes = Vec::new();
                stdin
                    .read_to_end(&mut bytes)
                    .map_err(|err| Failure::Usage(format!("stdin: {err}")))?;
                bytes
            }
        }
    };
    let pack = load(path, options)?;
    let result = pack.call(export, &input);
    let (usage, logs) = usage_and_logs(&result);
    if show_logs {
        for line in logs {
            eprintln!("[{}] {}", line.level.as_str(), line.message);
        }
    }
    if show_usage {
        if let Some(usage) = usage {
            eprintln!("{}", serde_json::to_string(&usage).unwrap_or_default());
        }
    }
    let out = result?;
    // A secret the pack read stays off the terminal, as it stays out of logs and errors.
    let output = pack.redactor().redact_bytes(&out.output);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&output)
        .and_then(|()| {
            if std::io::stdout().is_terminal() && !output.ends_with(b"\n") {
                stdout.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .map_err(|err| Failure::Usage(format!("stdout: {err}")))
}

fn validate(paths: &[PathBuf]) -> Result<(), Failure> {
    let mut first_failure = None;
    for path in paths {
        match load(path, PackOptions::default()) {
            Ok(pack) => {
                let needs = &pack.manifest().capabilities.host_functions;
                let needs = if needs.is_empty() {
                    String::new()
                } else {
                    let names: Vec<&str> = needs.iter().map(|f| f.name.as_str()).collect();
                    format!(", needs host functions {}", names.join(", "))
                };
                println!(
                    "ok      {}  {} {} ({} actions{needs})",
                    path.display(),
                    pack.manifest().name,
                    pack.manifest().version,
                    pack.actions().len()
                )
            }
            Err(err) => {
                println!("invalid {}  {}", path.display(), err);
                first_failure.get_or_insert(err);
            }
        }
    }
    match first_failure {
        Some(err) => Err(Failure::Pack(err)),
        None => Ok(()),
    }
}

fn embed(module: &Path, output: &Path, manifest: Option<&Path>) -> Result<(), Failure> {
    let bytes = read_file(module)?;
    let pack_bytes = match manifest {
        Some(file) => {
            let manifest_json = read_file(file)?;
            let info = packhost::ModuleInfo::read(&bytes)?;
            packhost::PackManifest::parse(&manifest_json, &info)?;
            packhost::embed_manifest(&bytes, &manifest_json)?
        }
        None => packhost::embed_generated_manifest(&bytes)?,
    };
    write_atomically(output, &pack_bytes).map_err(Failure::Usage)?;
    let pack = Pack::load_with(
        &pack_bytes,
        PackOptions::default(),
        stand_ins_for(&packhost::ModuleInfo::read(&pack_bytes)?),
    )?;
    println!(
        "{} {} -> {} ({} actions)",
        pack.manifest().name,
        pack.manifest().version,
        output.display(),
        pack.actions().len()
    );
    Ok(())
}

/// Writes a pack aside and renames it into place, so a reader never sees half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut staged = path.as_os_str().to_owned();
    staged.push(".partial");
    let staged = PathBuf::from(staged);
    std::fs::write(&staged, bytes)
        .and_then(|()| std::fs::rename(&staged, path))
        .map_err(|err| format!("{}: {err}", path.display()))
}
