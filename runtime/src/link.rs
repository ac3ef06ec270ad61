//! Linked modules: a plugin made of a main module and named modules it imports from (an
//! Extism manifest's other `wasm` entries), checked at load and put in the order instances
//! make them (each after the modules it imports from).
//!
//! As in Extism, a linked module is instantiated once per instance, before the main module,
//! and everything it exports is importable under its name by the modules after it; one
//! named `extism:host/user` serves host functions. Unlike Extism, whose linker follows
//! imports recursively and overflows its stack on a circle, a circle is refused at load, as
//! is an import from the main module (instantiated last, so nothing can import from it).

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::capabilities::host_fn::{is_packhost_namespace, HostFunction};
use crate::error::{Error, Result};
use crate::module::{Import, ModuleInfo, EXTISM_ENV, WASI_PREVIEW1};

/// What the main module is called among the modules of a plugin, as in Extism.
pub const MAIN_MODULE: &str = "main";

/// Most modules linked with a main module: each is instantiated in every instance, and the
/// loader follows their imports recursively.
pub const MAX_LINKED_MODULES: usize = 64;

/// Module names packhost provides, which no linked module can take.
const PROVIDED_MODULES: [&str; 3] = [EXTISM_ENV, WASI_PREVIEW1, "wasi_unstable"];

/// A module the main module (or another linked module) imports from by `name`.
#[derive(Clone)]
pub struct LinkedModule {
    /// The import module name it answers to.
    pub name: String,
    /// The module.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for LinkedModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedModule")
            .field("name", &self.name)
            .field("bytes", &format_args!("{} bytes", self.bytes.len()))
            .finish()
    }
}

/// A linked module as the engines make it.
#[derive(Debug, Clone)]
pub(crate) struct LinkedCode {
    pub(crate) name: String,
    /// Its SHA-256, the key of its compiled code.
    pub(crate) id: String,
    pub(crate) wasm: Arc<Vec<u8>>,
}

/// A plugin's modules, checked against each other.
pub(crate) struct Linking {
    /// The linked modules, each after those it imports from.
    pub(crate) order: Vec<(LinkedCode, Arc<ModuleInfo>)>,
    /// The plugin as the host sees it: the main module with every import of every module
    /// that no linked module serves (what packhost and the host must provide), its start-up
    /// code and its tables; the main module itself when it links with none.
    pub(crate) host_view: Arc<ModuleInfo>,
}

impl Linking {
    /// Links `main` with `modules`, reading each with `read` (the loader's validation,
    /// remembered by hash).
    ///
    /// # Errors
    /// `invalid_pack` for a module that does not validate (naming it), a reserved or
    /// repeated name, an import from the main module, or modules that import each other in
    /// a circle.
    pub(crate) fn new(
        main: &Arc<ModuleInfo>,
        modules: &[LinkedModule],
        read: impl Fn(&str, &[u8]) -> Result<Arc<ModuleInfo>>,
    ) -> Result<Self> {
        if modules.len() > MAX_LINKED_MODULES {
            return Err(Error::invalid_pack(format!(
                "{} linked modules; packhost links at most {MAX_LINKED_MODULES}",
                modules.len()
            )));
        }
        // A component carries and links its own modules; Extism's linking is for modules.
        if main.component && !modules.is_empty() {
            return Err(Error::invalid_pack(
                "the main module is a component, which links its own modules: a manifest cannot add more",
            ));
        }
        let mut read_modules = Vec::with_capacity(modules.len());
        for module in modules {
            check_name(&module.name, &read_modules)?;
            let id = crate::pack::module_id(&module.bytes);
            let info = read(&id, &module.bytes).map_err(|err| in_module(&module.name, err))?;
            if info.component {
                return Err(in_module(
                    &module.name,
                    Error::invalid_pack("a component cannot be linked; only core modules can"),
                ));
            }
            let code = LinkedCode {
                name: module.name.clone(),
                id,
                wasm: Arc::new(module.bytes.clone()),
            };
            read_modules.push((code, info));
        }
        let order = instantiation_order(read_modules)?;
        let host_view = if order.is_empty() {
            main.clone()
        } else {
            Arc::new(host_view(main, &order))
        };
        Ok(Linking { order, host_view })
    }

    /// Checks every module's imports: those from a linked module against its exports, the
    /// rest as [`ModuleInfo::check_imports`] does.
    ///
    /// # Errors
    /// As [`ModuleInfo::check_imports`], naming the linked module an error is about.
    pub(crate) fn check_imports(
        &self,
        main: &ModuleInfo,
        allow_wasi: bool,
        functions: &[HostFunction],
    ) -> Result<()> {
        let linked: Vec<(&str, &ModuleInfo)> = self
            .order
            .iter()
            .map(|(code, info)| (code.name.as_str(), &**info))
            .collect();
        main.check_imports(allow_wasi, functions, &linked)?;
        for (code, info) in &self.order {
            info.check_imports(allow_wasi, functions, &linked)
                .map_err(|err| in_module(&code.name, err))?;
        }
        Ok(())
    }

    /// The plugin's identity: the main module's SHA-256 alone, or, with linked modules, the
    /// SHA-256 over it and each linked module's name and SHA-256.
    pub(crate) fn plugin_id(&self, main_id: &str) -> String {
        if self.order.is_empty() {
            return main_id.to_string();
        }
        let mut named: Vec<(&str, &str)> = self
            .order
            .iter()
            .map(|(code, _)| (code.name.as_str(), code.id.as_str()))
            .collect();
        named.sort_unstable();
        let mut hasher = Sha256::new();
        hasher.update(main_id);
        for (name, id) in named {
            // Length first, so that no name can pose as a name and a hash.
            hasher.update((name.len() as u64).to_le_bytes());
            hasher.update(name);
            hasher.update(id);
        }
        crate::pack::hex(&hasher.finalize())
    }
}

/// `err`, about the linked module `name`, saying so.
pub(crate) fn in_module(name: &str, err: Error) -> Error {
    Error::new(
        err.kind().clone(),
        format!("the linked module {name:?}: {}", err.message()),
    )
}

/// Refuses a name a linked module cannot answer to: one packhost provides, the main
/// module's, or one taken by an earlier module.
fn check_name(name: &str, earlier: &[(LinkedCode, Arc<ModuleInfo>)]) -> Result<()> {
    let reserved = PROVIDED_MODULES.contains(&name) || is_packhost_namespace(name);
    if reserved {
        return Err(Error::invalid_pack(format!(
            "a linked module cannot be named {name:?}: packhost provides that module"
        )));
    }
    if name == MAIN_MODULE {
        return Err(Error::invalid_pack(format!(
            "a linked module cannot be named {name:?}: that is the main module"
        )));
    }
    if name.is_empty() {
        return Err(Error::invalid_pack("a linked module needs a name"));
    }
    if earlier.iter().any(|(code, _)| code.name == name) {
        return Err(Error::invalid_pack(format!(
            "two linked modules are named {name:?}"
        )));
    }
    Ok(())
}

/// The modules, each after those it imports from.
///
/// # Errors
/// `invalid_pack` for an import from the main module or a circle of imports, naming it.
fn instantiation_order(
    modules: Vec<(LinkedCode, Arc<ModuleInfo>)>,
) -> Result<Vec<(LinkedCode, Arc<ModuleInfo>)>> {
    let index_of = |name: &str| modules.iter().position(|(code, _)| code.name == name);
    let mut depends_on = Vec::with_capacity(modules.len());
    for (code, info) in &modules {
        if info
            .imports
            .iter()
            .any(|import| import.module == MAIN_MODULE)
        {
            return Err(Error::invalid_pack(format!(
                "the linked module {:?} imports from the main module, which is instantiated \
                 last: nothing can import from it",
                code.name
            )));
        }
        // Only what a linked module serves makes a dependency: a module named
        // `extism:host/user` may import the host's functions of that namespace.
        let mut imported: Vec<usize> = info
            .imports
            .iter()
            .filter_map(|import| {
                index_of(&import.module)
                    .filter(|&index| modules[index].1.export(&import.name).is_some())
            })
            .collect();
        imported.sort_unstable();
        imported.dedup();
        depends_on.push(imported);
    }
    // Depth first from each module in the manifest's order; `path` is the chain being
    // followed, so meeting a module on it again is a circle.
    let mut placed = vec![false; modules.len()];
    let mut order = Vec::with_capacity(modules.len());
    for start in 0..modules.len() {
        let mut path = Vec::new();
        place(start, &depends_on, &mut placed, &mut path, &mut order).map_err(|circle| {
            let names: Vec<&str> = circle
                .iter()
                .map(|&index| modules[index].0.name.as_str())
                .collect();
            Error::invalid_pack(format!(
                "the linked modules import from each other in a circle ({}): wasm \
                 instantiates a module only after those it imports from, so a circle cannot \
                 be linked",
                names.join(" → ")
            ))
        })?;
    }
    let mut modules: Vec<Option<_>> = modules.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .filter_map(|index| modules[index].take())
        .collect())
}

/// Places `module` after everything it imports from; `Err` holds a circle found on the way.
fn place(
    module: usize,
    depends_on: &[Vec<usize>],
    placed: &mut [bool],
    path: &mut Vec<usize>,
    order: &mut Vec<usize>,
) -> std::result::Result<(), Vec<usize>> {
    if placed[module] {
        return Ok(());
    }
    if let Some(at) = path.iter().position(|&on| on == module) {
        let mut circle = path[at..].to_vec();
        circle.push(module);
        return Err(circle);
    }
    path.push(module);
    for &dependency in &depends_on[module] {
        place(dependency, depends_on, placed, path, order)?;
    }
    path.pop();
    placed[module] = true;
    order.push(module);
    Ok(())
}

/// The plugin as the host sees it (see [`Linking::host_view`]).
fn host_view(main: &ModuleInfo, linked: &[(LinkedCode, Arc<ModuleInfo>)]) -> ModuleInfo {
    let served = |import: &Import| {
        linked
            .iter()
            .any(|(code, info)| code.name == import.module && info.export(&import.name).is_some())
    };
    let mut view = main.clone();
    view.imports.retain(|import| !served(import));
    for (_, info) in linked {
        for import in &info.imports {
            if !served(import) && !view.imports.contains(import) {
                view.imports.push(import.clone());
            }
        }
        // A linked module's start-up code is the plugin's: the view has a start function
        // (as far as the checks of start-up code go) when any module has start-up code.
        view.has_start |= info.has_start_up_code();
        view.table_elements_max = view
            .table_elements_max
            .zip(info.table_elements_max)
            .map(|(sum, more)| sum.saturating_add(more));
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(wat: &str) -> Vec<u8> {
        wat::parse_str(wat).unwrap()
    }

    fn linked(name: &str, wat: &str) -> LinkedModule {
        LinkedModule {
            name: name.to_string(),
            bytes: module(wat),
        }
    }

    fn link(main: &str, modules: &[LinkedModule]) -> Result<Linking> {
        let main = Arc::new(ModuleInfo::read(&module(main))?);
        Linking::new(&main, modules, |_, bytes| {
            Ok(Arc::new(ModuleInfo::read(bytes)?))
        })
    }

    const LEAF: &str = r#"(module (func (export "f") (result i32) (i32.const 1)))"#;

    #[test]
    fn modules_are_made_after_those_they_import_from() {
        let linking = link(
            r#"(module (import "b" "g" (func (result i32))))"#,
            &[
                linked(
                    "b",
                    r#"(module (import "a" "f" (func (result i32)))
                        (func (export "g") (result i32) (call 0)))"#,
                ),
                linked("a", LEAF),
            ],
        )
        .unwrap();
        let names: Vec<&str> = linking
            .order
            .iter()
            .map(|(code, _)| code.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert!(linking.host_view.imports.is_empty());
    }

    #[test]
    fn a_circle_is_refused_naming_its_modules() {
        let err = link(
            r#"(module (import "a" "f" (func)))"#,
            &[
                linked(
                    "a",
                    r#"(module (import "b" "g" (func)) (func (export "f")))"#,
                ),
                linked(
                    "b",
                    r#"(module (import "a" "f" (func)) (func (export "g")))"#,
                ),
            ],
        )
        .err()
        .unwrap();
        assert_eq!(err.code(), "invalid_pack");
        assert!(err.message().contains("a → b → a"), "{err}");
    }

    #[test]
    fn a_module_importing_the_hosts_functions_of_its_own_name_is_no_circle() {
        let user = r#"(module (import "extism:host/user" "reverse" (func))
            (func (export "greeting")))"#;
        let linking = link(
            r#"(module (import "extism:host/user" "greeting" (func)))"#,
            &[linked("extism:host/user", user)],
        )
        .unwrap();
        let imported: Vec<&str> = linking
            .host_view
            .imports
            .iter()
            .map(|import| import.name.as_str())
            .collect();
        assert_eq!(imported, ["reverse"]);
    }

    #[test]
    fn the_plugin_id_names_every_module_whatever_the_order() {
        let main = "(module)";
        let a = || linked("a", LEAF);
        let b = || linked("b", r#"(module (func (export "g")))"#);
        let id = |modules: &[LinkedModule]| link(main, modules).unwrap().plugin_id("m");
        assert_eq!(link(main, &[]).unwrap().plugin_id("m"), "m");
        assert_eq!(id(&[a(), b()]), id(&[b(), a()]));
        assert_ne!(id(&[a(), b()]), id(&[a()]));
        let renamed = LinkedModule {
            name: "c".to_string(),
            ..a()
        };
        assert_ne!(id(&[a()]), id(&[renamed]));
    }

    #[test]
    fn reserved_and_repeated_names_and_imports_from_main_are_refused() {
        for (modules, says) in [
            (vec![linked(EXTISM_ENV, LEAF)], "packhost provides"),
            (vec![linked("wasi_unstable", LEAF)], "packhost provides"),
            (vec![linked("", LEAF)], "needs a name"),
            (vec![linked("packhost:host/kv", LEAF)], "packhost provides"),
            (vec![linked("main", LEAF)], "the main module"),
            (
                vec![linked("a", LEAF), linked("a", LEAF)],
                "two linked modules",
            ),
            (
                vec![linked("a", r#"(module (import "main" "f" (func)))"#)],
                "imports from the main module",
            ),
            // Valid text, invalid wasm: the body leaves no i32.
            (
                vec![linked("a", r#"(module (func (export "f") (result i32)))"#)],
                "\"a\"",
            ),
        ] {
            let err = link("(module)", &modules).err().unwrap();
            assert_eq!(err.code(), "invalid_pack", "{says}");
            assert!(err.message().contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn imports_from_a_linked_module_must_match_its_exports() {
        for (main, says) in [
            (
                r#"(module (import "a" "g" (func (result i32))))"#,
                "neither the linked module of that name exports",
            ),
            (
                r#"(module (import "a" "f" (func (result i64))))"#,
                "as () -> (i64); it exports () -> (i32)",
            ),
            (
                r#"(module (import "a" "f" (global i32)))"#,
                "as a global; it exports a func",
            ),
            (
                r#"(module (import "b" "f" (func (result i32))))"#,
                "no linked module is named \"b\"",
            ),
        ] {
            let main_info = Arc::new(ModuleInfo::read(&module(main)).unwrap());
            let linking = Linking::new(&main_info, &[linked("a", LEAF)], |_, bytes| {
                Ok(Arc::new(ModuleInfo::read(bytes)?))
            })
            .unwrap();
            let err = linking.check_imports(&main_info, false, &[]).err().unwrap();
            assert_eq!(err.code(), "invalid_pack", "{main}");
            assert!(err.message().contains(says), "{main}: {err}");
        }
    }

    #[test]
    fn the_host_view_holds_what_no_linked_module_serves() {
        let linking = link(
            r#"(module (import "a" "f" (func (result i32)))
                (import "extism:host/env" "alloc" (func (param i64) (result i64))))"#,
            &[linked(
                "a",
                r#"(module (import "extism:host/user" "shout" (func))
                    (import "extism:host/env" "alloc" (func (param i64) (result i64)))
                    (func (export "f") (result i32) (i32.const 1))
                    (func (export "_initialize")))"#,
            )],
        )
        .unwrap();
        let imported: Vec<(&str, &str)> = linking
            .host_view
            .imports
            .iter()
            .map(|import| (import.module.as_str(), import.name.as_str()))
            .collect();
        assert_eq!(
            imported,
            [("extism:host/env", "alloc"), ("extism:host/user", "shout")]
        );
        assert!(linking.host_view.has_start_up_code());
    }
}
