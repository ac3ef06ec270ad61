//! `packhost new`: writes a ready pack project (one action, `pre`, `post`, fixture cases,
//! a README and the language's build file) from the templates compiled into the command.
//!
//! Python and JavaScript projects are WebAssembly components and need no PDK: they get
//! packhost's contract (`wit/component.wit`) in `wit/deps/`. The C and AssemblyScript PDKs
//! are copied into the project (`include/packhost.h`, and
//! `packhost-pdk/`, a local npm package), at the version of this command, so those packs
//! build with their compiler alone and nothing is fetched under packhost-pdk's name from a
//! registry it is not published to. A Rust project depends on the packhost-pdk crate: from
//! the packhost checkout this command was built from while it exists (or the one `--pdk`
//! names), else from crates.io at this command's version, published with it.

use std::path::{Path, PathBuf};

use crate::project::Language;

/// A template file: where it goes in the project, and its text with `{{name}}` (and in
/// Cargo.toml `{{pdk}}`) still to fill in.
type TemplateFile = (&'static str, &'static str);

const COMMON: &[TemplateFile] = &[
    (
        "tests/cases.json",
        include_str!("../templates/common/tests/cases.json"),
    ),
    (".gitignore", include_str!("../templates/common/gitignore")),
];

const RUST: &[TemplateFile] = &[
    (
        "Cargo.toml",
        include_str!("../templates/rust/Cargo.toml.tmpl"),
    ),
    ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    ("README.md", include_str!("../templates/rust/README.md")),
];

const C: &[TemplateFile] = &[
    ("src/pack.c", include_str!("../templates/c/src/pack.c")),
    (
        "include/packhost.h",
        include_str!("../templates/c/include/packhost.h"),
    ),
    ("README.md", include_str!("../templates/c/README.md")),
];

const ASSEMBLYSCRIPT: &[TemplateFile] = &[
    (
        "package.json",
        include_str!("../templates/assemblyscript/package.json"),
    ),
    (
        "packhost-pdk/package.json",
        include_str!("../templates/assemblyscript/packhost-pdk/package.json"),
    ),
    (
        "packhost-pdk/README.md",
        include_str!("../templates/assemblyscript/packhost-pdk/README.md"),
    ),
    (
        "packhost-pdk/assembly/index.ts",
        include_str!("../templates/assemblyscript/packhost-pdk/assembly/index.ts"),
    ),
    (
        "asconfig.json",
        include_str!("../templates/assemblyscript/asconfig.json"),
    ),
    (
        "assembly/index.ts",
        include_str!("../templates/assemblyscript/assembly/index.ts"),
    ),
    (
        "README.md",
        include_str!("../templates/assemblyscript/README.md"),
    ),
];

/// What a component pack in any language holds besides its code: its world, packhost's
/// contract for it to include (`wit/component.wit`, the one WIT file a component toolchain
/// needs), and the manifest `packhost build` embeds.
const COMPONENT: &[TemplateFile] = &[
    (
        "wit/world.wit",
        include_str!("../templates/component/world.wit"),
    ),
    (
        "wit/deps/packhost-pack/component.wit",
        include_str!("../templates/component/packhost-pack.wit"),
    ),
    (
        "manifest.json",
        include_str!("../templates/component/manifest.json"),
    ),
];

const PYTHON: &[TemplateFile] = &[
    ("app.py", include_str!("../templates/python/app.py")),
    ("README.md", include_str!("../templates/python/README.md")),
];

const JAVASCRIPT: &[TemplateFile] = &[
    ("package.json", include_str!("../templates/js/package.json")),
    ("pack.js", include_str!("../templates/js/pack.js")),
    ("README.md", include_str!("../templates/js/README.md")),
];

/// The version of packhost-pdk a Rust project gets from crates.io: this command's own.
const PDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where a new Rust project takes the packhost-pdk crate from.
enum PdkSource {
    /// A packhost checkout's `pdk/` folder.
    Checkout(PathBuf),
    /// crates.io, at [`PDK_VERSION`].
    Registry,
}

impl PdkSource {
    /// The folder `--pdk` names, else the checkout this command was built from while it
    /// still holds the PDKs, else the registries.
    fn find(flag: Option<&Path>) -> Result<PdkSource, String> {
        if let Some(folder) = flag {
            return Self::checkout(folder).ok_or_else(|| {
                format!(
                    "{}: not packhost's pdk folder (the packhost-pdk crate's)",
                    folder.display()
                )
            });
        }
        let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pdk");
        Ok(Self::checkout(&built_from).unwrap_or(PdkSource::Registry))
    }

    fn checkout(folder: &Path) -> Option<PdkSource> {
        let cargo = std::fs::read_to_string(folder.join("Cargo.toml")).ok()?;
        if !cargo.contains("name = \"packhost-pdk\"") {
            return None;
        }
        folder.canonicalize().ok().map(PdkSource::Checkout)
    }

    /// The dependency as Cargo.toml spells it.
    fn spec(&self) -> String {
        match self {
            PdkSource::Checkout(folder) => format!(
                "{{ version = \"{PDK_VERSION}\", path = {} }}",
                quoted(&folder.display().to_string())
            ),
            PdkSource::Registry => format!("\"{PDK_VERSION}\""),
        }
    }
}

/// Where the project's PDK comes from, for people.
fn pdk_origin(language: Language, source: &PdkSource) -> String {
    match (language, source) {
        (Language::C, _) => "the C PDK copied to include/packhost.h".to_string(),
        (Language::AssemblyScript, _) => {
            "the AssemblyScript PDK copied to packhost-pdk/".to_string()
        }
        (Language::Rust, PdkSource::Checkout(folder)) => {
            format!("packhost-pdk from {}", folder.display())
        }
        (Language::Rust, PdkSource::Registry) => {
            format!("packhost-pdk {PDK_VERSION} from crates.io")
        }
        (Language::Python, _) => {
            "a component built with componentize-py; packhost's WIT in wit/deps/".to_string()
        }
        (Language::JavaScript, _) => {
            "a component built with componentize-js; packhost's WIT in wit/deps/".to_string()
        }
    }
}

/// A JSON string literal, which is also a valid TOML basic string.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
}

/// Whether `name` can name a pack, a crate and an npm package alike.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Names cargo refuses for a package: Rust's keywords and its built-in crates.
const RESERVED_IN_RUST: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc_macro",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
];

/// `packhost new NAME --lang LANGUAGE [--pdk FOLDER]`: writes the project into `./NAME`.
///
/// # Errors
/// A message for a bad name, a folder that already exists, or one that cannot be written.
pub(crate) fn new_project(
    name: &str,
    language: Language,
    pdk: Option<&Path>,
) -> Result<(), String> {
    if !valid_name(name) {
        return Err(format!(
            "{name:?} cannot name a pack: use lowercase letters, digits, '-' and '_', starting \
             with a letter (at most 64)"
        ));
    }
    if language == Language::Rust && RESERVED_IN_RUST.contains(&name.replace('-', "_").as_str()) {
        return Err(format!(
            "{name:?} cannot name a Rust pack: cargo reserves it (a keyword or a built-in crate)"
        ));
    }
    if language != Language::Rust && pdk.is_some() {
        return Err(
            "--pdk applies to Rust projects; the others get a copy of what they need".to_string(),
        );
    }
    let dir = Path::new(name);
    if dir.exists() {
        return Err(format!(
            "{name} already exists; choose another name or remove it"
        ));
    }
    let source = PdkSource::find(pdk)?;
    let pdk_spec = source.spec();
    let files: &[&[TemplateFile]] = match language {
        Language::Rust => &[RUST],
        Language::C => &[C],
        Language::AssemblyScript => &[ASSEMBLYSCRIPT],
        Language::Python => &[COMPONENT, PYTHON],
        Language::JavaScript => &[COMPONENT, JAVASCRIPT],
    };
    for (path, text) in COMMON.iter().chain(files.iter().copied().flatten()) {
        let target = dir.join(path);
        let text = text.replace("{{name}}", name).replace("{{pdk}}", &pdk_spec);
        std::fs::create_dir_all(target.parent().unwrap_or(dir))
            .and_then(|()| std::fs::write(&target, text))
            .map_err(|err| format!("{}: {err}", target.display()))?;
    }
    println!(
        "Created {name}, a new pack in {} ({}).",
        language.title(),
        pdk_origin(language, &source)
    );
    println!("Next: cd {name} && packhost build && packhost test");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_a_crate_an_npm_package_and_a_file() {
        assert!(valid_name("demo"));
        assert!(valid_name("my-pack_2"));
        for bad in [
            "",
            "Demo",
            "2fast",
            "-x",
            "a b",
            "a/b",
            "..",
            &"x".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(RESERVED_IN_RUST.contains(&"std") && RESERVED_IN_RUST.contains(&"proc_macro"));
    }

    #[test]
    fn the_pdk_spec_escapes_the_checkout_path() {
        let source = PdkSource::Checkout(PathBuf::from("/src/pack \"host\"/pdk"));
        assert_eq!(
            source.spec(),
            format!("{{ version = \"{PDK_VERSION}\", path = \"/src/pack \\\"host\\\"/pdk\" }}")
        );
        assert_eq!(PdkSource::Registry.spec(), format!("\"{PDK_VERSION}\""));
    }
}
