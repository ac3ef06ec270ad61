//! A pack's source project as `packhost build` sees it: the language it is written in (told
//! by the files in its folder), whether that language's toolchain is installed (and what to
//! install when it is not), how to run it, and where the built pack goes (`dist/`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::ValueEnum;

use crate::Failure;

/// The languages `packhost new` writes and `packhost build` builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Language {
    /// Rust with packhost-pdk, built by cargo.
    Rust,
    /// C with the one-header PDK, built by clang against wasi-libc.
    C,
    /// AssemblyScript with the packhost-pdk npm package, built by asc.
    #[value(name = "assemblyscript", alias = "as")]
    AssemblyScript,
    /// Python, built into a WebAssembly component by componentize-py.
    #[value(name = "python", alias = "py")]
    Python,
    /// JavaScript, built into a WebAssembly component by componentize-js.
    #[value(name = "js", alias = "javascript")]
    JavaScript,
}

impl Language {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::C => "c",
            Language::AssemblyScript => "assemblyscript",
            Language::Python => "python",
            Language::JavaScript => "js",
        }
    }

    /// True for the languages whose packs are WebAssembly components (`wit/component.wit`):
    /// their manifest is `manifest.json`, embedded as it is.
    pub(crate) fn builds_components(self) -> bool {
        matches!(self, Language::Python | Language::JavaScript)
    }

    /// The language's name, for people.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::C => "C",
            Language::AssemblyScript => "AssemblyScript",
            Language::Python => "Python",
            Language::JavaScript => "JavaScript",
        }
    }

    /// The language of the project in `dir`: Rust with a `Cargo.toml`, AssemblyScript with a
    /// `package.json` naming `assemblyscript`, JavaScript with one naming componentize-js,
    /// Python with an `app.py`, C with sources in `src/`.
    ///
    /// # Errors
    /// A message saying what a project needs when `dir` holds none of them.
    pub(crate) fn detect(dir: &Path) -> Result<Language, String> {
        if dir.join("Cargo.toml").is_file() {
            return Ok(Language::Rust);
        }
        let package = std::fs::read_to_string(dir.join("package.json")).unwrap_or_default();
        if package.contains("\"assemblyscript\"") {
            return Ok(Language::AssemblyScript);
        }
        if package.contains("\"@bytecodealliance/componentize-js\"") {
            return Ok(Language::JavaScript);
        }
        if dir.join(PYTHON_APP).is_file() {
            return Ok(Language::Python);
        }
        if !c_sources(dir).is_empty() {
            return Ok(Language::C);
        }
        Err(format!(
            "{} holds no pack project: packhost builds a folder with a Cargo.toml (Rust), a \
             package.json depending on assemblyscript (AssemblyScript) or on \
             @bytecodealliance/componentize-js (JavaScript), an app.py (Python) or .c files in \
             src/ (C); start one with `packhost new NAME --lang rust|c|assemblyscript|python|js`",
            shown(dir)
        ))
    }
}

/// A Python project's module, whose `WitWorld` class implements the pack's world.
const PYTHON_APP: &str = "app.py";

/// A JavaScript project's module, which exports the pack's actions.
const JAVASCRIPT_SOURCE: &str = "pack.js";

/// The componentize-py a Python project's first build installs into its `.venv/`: the
/// version whose components packhost's tests run.
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// The world of a component project's `wit/world.wit`.
const COMPONENT_WORLD: &str = "pack";

/// The C sources of a project: `src/*.c`, in name order.
fn c_sources(dir: &Path) -> Vec<PathBuf> {
    files_with_extension(&inside(dir, "src"), "c").unwrap_or_default()
}

/// The files in `folder` whose names end in `.extension`, in name order.
pub(crate) fn files_with_extension(
    folder: &Path,
    extension: &str,
) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        if path.extension() == Some(OsStr::new(extension)) && path.is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// `dir` as a person would name it.
fn shown(dir: &Path) -> String {
    if dir == Path::new(".") || dir.as_os_str().is_empty() {
        "this folder".to_string()
    } else {
        dir.display().to_string()
    }
}

/// `relative` inside the project in `dir`: as it is when that is this folder, since the
/// paths of a build are printed for people (`dist/x.wasm`, not `./dist/x.wasm`).
fn inside(dir: &Path, relative: &str) -> PathBuf {
    if dir == Path::new(".") {
        PathBuf::from(relative)
    } else {
        dir.join(relative)
    }
}

/// Where the built packs of the project in `dir` go.
pub(crate) fn dist_dir(dir: &Path) -> PathBuf {
    inside(dir, "dist")
}

/// The pack `packhost build` made in `dir`, for the commands that take one when none is named.
///
/// # Errors
/// A message when `dist/` holds no pack, or several.
pub(crate) fn built_pack(dir: &Path) -> Result<PathBuf, String> {
    let dist = dist_dir(dir);
    let mut packs = files_with_extension(&dist, "wasm").unwrap_or_default();
    match packs.len() {
        1 => Ok(packs.remove(0)),
        0 => Err(format!(
            "no pack in {}: build one with `packhost build`, or name the pack",
            dist.display()
        )),
        _ => Err(format!(
            "{} holds several packs ({}): name the one to use",
            dist.display(),
            packs
                .iter()
                .filter_map(|path| path.file_name()?.to_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Whether `program` is an executable file in a folder of `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|folder| {
            let candidate = folder.join(program);
            std::fs::metadata(&candidate).is_ok_and(|meta| {
                meta.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0
            })
        })
    })
}

/// The first line `program args` prints, when it runs.
fn first_line_of(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.lines().next()?.trim().to_string()).filter(|line| !line.is_empty())
}

/// What is missing to build `language` on this machine, with what to install; `None` when
/// the toolchain is complete.
pub(crate) fn missing_toolchain(language: Language) -> Option<String> {
    match language {
        Language::Rust => {
            if !on_path("cargo") || !on_path("rustc") {
                return Some(
                    "cargo is not installed. Install Rust with rustup (https://rustup.rs), then \
                     the WebAssembly target: rustup target add wasm32-unknown-unknown"
                        .to_string(),
                );
            }
            let sysroot = first_line_of("rustc", &["--print", "sysroot"])?;
            let target = Path::new(&sysroot).join("lib/rustlib/wasm32-unknown-unknown");
            (!target.is_dir()).then(|| {
                "Rust cannot build for WebAssembly yet. Install the target: rustup target add \
                 wasm32-unknown-unknown"
                    .to_string()
            })
        }
        Language::C => {
            const INSTALL: &str = "apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32 \
                 (Debian 12; elsewhere clang, lld, wasi-libc and clang's wasm32 compiler-rt)";
            if !on_path("clang") {
                return Some(format!("clang is not installed. Install it: {INSTALL}"));
            }
            if !on_path("wasm-ld") {
                return Some(format!(
                    "wasm-ld (lld's WebAssembly linker) is not installed. Install it: {INSTALL}"
                ));
            }
            let target = clang_target();
            let found = |args: &[&str]| {
                first_line_of("clang", args).is_some_and(|path| {
                    Path::new(&path).is_absolute() && Path::new(&path).is_file()
                })
            };
            if !found(&[&target, "-print-file-name=libc.a"]) {
                return Some(format!("wasi-libc is not installed. Install it: {INSTALL}"));
            }
            if !found(&[&target, "-print-libgcc-file-name"]) {
                return Some(format!(
                    "clang's WebAssembly runtime library (compiler-rt builtins for wasm32) is \
                     not installed. Install it: {INSTALL}"
                ));
            }
            None
        }
        Language::AssemblyScript | Language::JavaScript => (!on_path("node") || !on_path("npm"))
            .then(|| {
                format!(
                    "Node.js (with npm) is not installed; the {} compiler runs on it. \
                     Install it: apt-get install nodejs npm (or from https://nodejs.org)",
                    language.title()
                )
            }),
        Language::Python => {
            let venv = Command::new("python3")
                .args(["-c", "import venv, ensurepip"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            (!venv.is_ok_and(|status| status.success())).then(|| {
                "Python 3 with its venv module is not installed; componentize-py is installed \
                 into the project's .venv/ with it. Install it: apt-get install python3 \
                 python3-venv"
                    .to_string()
            })
        }
    }
}

/// clang's `--target` for WASI preview 1: `wasm32-wasip1` where wasi-libc is installed under
/// that name (newer clangs deprecate `wasm32-wasi`, an error with `-Werror`), else
/// `wasm32-wasi` (Debian 12's clang 14 and wasi-libc).
fn clang_target() -> String {
    let preview1 = "--target=wasm32-wasip1";
    let libc = first_line_of("clang", &[preview1, "-print-file-name=libc.a"]);
    if libc.is_some_and(|path| Path::new(&path).is_absolute()) {
        preview1.to_string()
    } else {
        "--target=wasm32-wasi".to_string()
    }
}

/// The cargo feature that builds a packhost-pdk pack without its manifest generator.
const OMIT_MANIFEST_EXPORT: &str = "packhost-pdk/omit-manifest-export";

/// The pack built from the project in `dir`: the toolchain's module with its generated
/// manifest embedded. A release build ships the smallest module the toolchain makes: a Rust
/// pack on packhost-pdk is built a second time without the manifest generator (once its
/// manifest is taken), and binaryen's `wasm-opt -Oz` runs over Rust and C modules when it
/// is installed (asc runs binaryen itself).
///
/// # Errors
/// The toolchain's failure, or the pack's when its manifest cannot be generated.
pub(crate) fn build_pack(
    dir: &Path,
    language: Language,
    release: bool,
) -> Result<Vec<u8>, Failure> {
    if language.builds_components() {
        return build_component(dir, language);
    }
    let module = read_module(&compile(dir, language, release, &[])?)?;
    eprintln!("==> manifest: running the module's __packhost_manifest export");
    let with_manifest = packhost::embed_generated_manifest(&module)?;
    if !release {
        return Ok(with_manifest);
    }
    let manifest = packhost::ModuleInfo::read(&with_manifest)?
        .manifest_section
        .unwrap_or_default();
    let mut shipped = module;
    let cargo_toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    if language == Language::Rust && cargo_toml.contains("packhost-pdk") {
        // An older packhost-pdk lacks the feature, and a renamed dependency needs another
        // spelling of it: cargo refuses both, and the first build's module ships instead.
        let features = ["--features", OMIT_MANIFEST_EXPORT];
        match compile(dir, language, release, &features) {
            Ok(module) => shipped = read_module(&module)?,
            Err(_) => eprintln!(
                "note: the build without the manifest generator failed (above), so the pack \
                 keeps it; a packhost-pdk with the `omit-manifest-export` feature leaves it out"
            ),
        }
    }
    if language != Language::AssemblyScript {
        shipped = optimized(dir, shipped)?;
    }
    Ok(packhost::embed_manifest(&shipped, &manifest)?)
}

/// The component built from the Python or JavaScript project in `dir`, with its
/// `manifest.json` embedded. Debug and release builds are the same: the toolchains have one
/// output.
///
/// # Errors
/// The toolchain's failure, or a missing or invalid `manifest.json`.
fn build_component(dir: &Path, language: Language) -> Result<Vec<u8>, Failure> {
    let manifest_path = inside(dir, "manifest.json");
    let manifest = std::fs::read(&manifest_path).map_err(|err| {
        Failure::Build(format!(
            "{}: {err}; a component pack's manifest is this file",
            manifest_path.display()
        ))
    })?;
    let component = read_module(&compile(dir, language, true, &[])?)?;
    eprintln!("==> manifest: embedding {}", manifest_path.display());
    Ok(packhost::embed_manifest(&component, &manifest)?)
}

/// Runs `npm install` in `dir` when `tool` (a program its `node_modules` should hold) is
/// missing, and says which package to add when it is still missing after.
fn npm_install_for(dir: &Path, tool: &Path, package: &str) -> Result<(), Failure> {
    if tool.is_file() {
        return Ok(());
    }
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund"])
        .current_dir(dir);
    run(&mut npm, "dependencies").map_err(Failure::Build)?;
    if tool.is_file() {
        Ok(())
    } else {
        Err(Failure::Build(format!(
            "npm installed no {}: add \"{package}\" to package.json's devDependencies",
            tool.file_name().unwrap_or_default().to_string_lossy()
        )))
    }
}

/// `path` made absolute, for a program run from inside another folder.
fn absolute(path: &Path) -> Result<PathBuf, Failure> {
    std::path::absolute(path).map_err(|err| Failure::Build(format!("{}: {err}", path.display())))
}

/// `module` through `wasm-opt -Oz` when binaryen is installed, else as it is (with a note).
fn optimized(dir: &Path, module: Vec<u8>) -> Result<Vec<u8>, Failure> {
    if !on_path("wasm-opt") {
        eprintln!(
            "note: binaryen's wasm-opt is not installed, so the pack is not as small as it could \
             be (apt-get install binaryen)"
        );
        return Ok(module);
    }
    let input = inside(dir, "build/shipped.wasm");
    let output = inside(dir, "build/shipped.opt.wasm");
    create_parent(&input).map_err(Failure::Build)?;
    std::fs::write(&input, &module)
        .map_err(|err| Failure::Build(format!("{}: {err}", input.display())))?;
    // The proposals rustc and clang emit for wasm32 today, all of which wasmtime runs.
    let mut wasm_opt = Command::new("wasm-opt");
    wasm_opt
        .args([
            "-Oz",
            "--enable-bulk-memory",
            "--enable-sign-ext",
            "--enable-mutable-globals",
        ])
        .args([
            "--enable-nontrapping-float-to-int",
            "--enable-multivalue",
            "--enable-reference-types",
        ])
        .arg(&input)
        .arg("-o")
        .arg(&output);
    match run(&mut wasm_opt, "smallest") {
        Ok(_) => read_module(&output),
        // A proposal this binaryen does not know, say: the module is valid as it is.
        Err(message) => {
            eprintln!("note: {message}; the pack ships as the toolchain made it");
            Ok(module)
        }
    }
}

fn read_module(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|err| Failure::Build(format!("{}: {err}", path.display())))
}

/// The module the toolchain made from the project in `dir`, before its manifest is embedded;
/// `cargo_args` go to cargo when it is a Rust project.
///
/// # Errors
/// What failed: the toolchain (whose own messages are already on stderr), or a missing piece
/// of the project.
fn compile(
    dir: &Path,
    language: Language,
    release: bool,
    cargo_args: &[&str],
) -> Result<PathBuf, Failure> {
    let profile = if release { "release" } else { "debug" };
    match language {
        Language::Rust => {
            let mut cargo = Command::new("cargo");
            cargo.args(["build", "--lib", "--target", "wasm32-unknown-unknown"]);
            if release {
                cargo.arg("--release");
            }
            cargo.args(cargo_args);
            // Progress and rendered errors go to stderr as usual; stdout carries the JSON
            // that names the module, wherever CARGO_TARGET_DIR puts it.
            cargo.arg("--message-format=json-render-diagnostics");
            let output = run(cargo.current_dir(dir).stdout(Stdio::piped()), profile)
                .map_err(Failure::Build)?;
            cdylib_of(&output).ok_or_else(|| {
                Failure::Build(
                    "cargo built no cdylib: set crate-type = [\"cdylib\"] in Cargo.toml's [lib]"
                        .to_string(),
                )
            })
        }
        Language::C => {
            let sources = c_sources(dir);
            let module = inside(dir, "build/pack.wasm");
            create_parent(&module).map_err(Failure::Build)?;
            let mut clang = Command::new("clang");
            clang
                .arg(clang_target())
                .args(["-mexec-model=reactor", "-Wall", "-Wextra", "-Werror"]);
            if dir.join("include").is_dir() {
                clang.arg("-I").arg(inside(dir, "include"));
            }
            if release {
                clang.args(["-Oz", "-Wl,--strip-all"]);
            } else {
                clang.args(["-O1", "-g"]);
            }
            clang.arg("-o").arg(&module).args(&sources);
            run(&mut clang, profile).map_err(Failure::Build)?;
            Ok(module)
        }
        Language::AssemblyScript => {
            let asc = inside(dir, "node_modules/.bin/asc");
            npm_install_for(dir, &asc, "assemblyscript")?;
            let module = inside(dir, "build/pack.wasm");
            create_parent(&module).map_err(Failure::Build)?;
            // Absolute: the program path is resolved from inside `current_dir`.
            let mut compiler = Command::new(absolute(&asc)?);
            compiler
                .args([
                    "assembly/index.ts",
                    "--target",
                    profile,
                    "--outFile",
                    "build/pack.wasm",
                ])
                .current_dir(dir);
            run(&mut compiler, profile).map_err(Failure::Build)?;
            Ok(module)
        }
        Language::Python => {
            let tool = inside(dir, ".venv/bin/componentize-py");
            if !tool.is_file() {
                let mut venv = Command::new("python3");
                venv.args(["-m", "venv", ".venv"]).current_dir(dir);
                run(&mut venv, "a Python environment for the build").map_err(Failure::Build)?;
                let mut pip = Command::new(absolute(&inside(dir, ".venv/bin/pip"))?);
                pip.args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    COMPONENTIZE_PY,
                ])
                .current_dir(dir);
                run(&mut pip, "componentize-py").map_err(Failure::Build)?;
            }
            let component = inside(dir, "build/pack.wasm");
            create_parent(&component).map_err(Failure::Build)?;
            // No WASI is lent to components: `--stub-wasi` makes every WASI import a trap
            // inside the component, so it imports packhost's host interface alone.
            let mut componentize = Command::new(absolute(&tool)?);
            componentize
                .args([
                    "-d",
                    "wit",
                    "-w",
                    COMPONENT_WORLD,
                    "componentize",
                    "--stub-wasi",
                ])
                .args([PYTHON_APP.trim_end_matches(".py"), "-o", "build/pack.wasm"])
                .current_dir(dir);
            run(&mut componentize, "component").map_err(Failure::Build)?;
            Ok(component)
        }
        Language::JavaScript => {
            let tool = inside(dir, "node_modules/.bin/componentize-js");
            npm_install_for(dir, &tool, "@bytecodealliance/componentize-js")?;
            let component = inside(dir, "build/pack.wasm");
            create_parent(&component).map_err(Failure::Build)?;
            // No WASI is lent to components: with every feature disabled the component
            // imports packhost's host interface alone.
            let mut componentize = Command::new(absolute(&tool)?);
            componentize
                .args([
                    JAVASCRIPT_SOURCE,
                    "--wit",
                    "wit",
                    "--world-name",
                    COMPONENT_WORLD,
                ])
                .args(["-o", "build/pack.wasm", "--disable"])
                .args(["stdio", "random", "clocks", "http", "fetch-event"])
                .current_dir(dir);
            run(&mut componentize, "component").map_err(Failure::Build)?;
            Ok(component)
        }
    }
}

fn create_parent(path: &Path) -> Result<(), String> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|err| format!("{}: {err}", parent.display()))
}

/// Runs a toolchain step, its progress and errors on the terminal; returns its stdout when
/// that was piped.
fn run(command: &mut Command, what: &str) -> Result<Vec<u8>, String> {
    let line = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("==> {what}: {line}");
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|err| format!("{program} could not run: {err}"))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(format!(
            "{program} failed ({}); its messages are above",
            output.status
        ))
    }
}

/// The `.wasm` of the cdylib in cargo's JSON messages.
fn cdylib_of(messages: &[u8]) -> Option<PathBuf> {
    String::from_utf8_lossy(messages)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| {
            message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "cdylib"))
        })
        .flat_map(|message| message["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|name| name.as_str().map(PathBuf::from))
        .rfind(|path| path.extension() == Some(OsStr::new("wasm")))
}

/// A file name for the pack named `name` in its manifest: characters a file name should not
/// hold become `-`.
pub(crate) fn pack_file_name(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    // Not hidden, and not read as a command-line option.
    let stem = stem.trim_start_matches(['.', '-']);
    format!("{}.wasm", if stem.is_empty() { "pack" } else { stem })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_file_names_stay_inside_dist() {
        assert_eq!(pack_file_name("text-tools"), "text-tools.wasm");
        assert_eq!(pack_file_name("../../etc/passwd"), "etc-passwd.wasm");
        assert_eq!(pack_file_name("a b/c"), "a-b-c.wasm");
        assert_eq!(pack_file_name(""), "pack.wasm");
        assert_eq!(pack_file_name("..."), "pack.wasm");
    }

    #[test]
    fn the_cdylib_is_found_among_cargo_messages() {
        let messages = br#"{"reason":"compiler-artifact","target":{"kind":["lib"]},"filenames":["/t/libserde.rlib"]}
{"reason":"compiler-artifact","target":{"kind":["cdylib"]},"filenames":["/t/wasm32-unknown-unknown/debug/demo.wasm"]}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            cdylib_of(messages),
            Some(PathBuf::from("/t/wasm32-unknown-unknown/debug/demo.wasm"))
        );
        assert_eq!(cdylib_of(b"not json\n"), None);
    }
}
