//! Keeps the WIT contract in `wit/`, the runtime's import table and what PDK-built packs
//! actually import from drifting apart.

mod support;

use std::collections::BTreeMap;

use packhost::module::{EnvFunction, ModuleInfo, EXTISM_ENV, EXTISM_ENV_FUNCTIONS};
use packhost::{KV_FUNCTIONS, KV_NAMESPACE, SECRETS_FUNCTIONS, SECRETS_NAMESPACE};
use wit_parser::{Resolve, Type, WorldItem, WorldKey};

type Signature = (Vec<String>, Vec<String>);

/// The core wasm type a WIT primitive flattens to.
fn core_type(ty: &Type) -> String {
    match ty {
        Type::U64 | Type::S64 => "i64",
        Type::U8 | Type::S8 | Type::U16 | Type::S16 | Type::U32 | Type::S32 | Type::Bool => "i32",
        other => panic!("the ABI uses only integer types, found {other:?}"),
    }
    .to_string()
}

fn resolve() -> (Resolve, wit_parser::PackageId) {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_dir(support::repo_root().join("wit"))
        .expect("wit/ parses");
    (resolve, package)
}

/// The interface of import module `module` (`extism:host/env`) from WIT, as snake_case
/// name to core signature.
fn wit_functions(resolve: &Resolve, module: &str) -> BTreeMap<String, Signature> {
    let (_, interface) = resolve
        .interfaces
        .iter()
        .find(|(_, iface)| {
            iface.package.is_some_and(|p| {
                let name = &resolve.packages[p].name;
                let iface_name = iface.name.as_deref().unwrap_or_default();
                format!("{}:{}/{iface_name}", name.namespace, name.name) == module
            })
        })
        .unwrap_or_else(|| panic!("wit declares {module}"));
    interface
        .functions
        .values()
        .map(|function| {
            let params = function
                .params
                .iter()
                .map(|param| core_type(&param.ty))
                .collect();
            let results = function.result.iter().map(core_type).collect();
            (function.name.replace('-', "_"), (params, results))
        })
        .collect()
}

fn table(functions: &[EnvFunction]) -> BTreeMap<String, Signature> {
    functions
        .iter()
        .map(|f| {
            let own = |types: &[&str]| types.iter().map(|t| t.to_string()).collect();
            (f.name.to_string(), (own(f.params), own(f.results)))
        })
        .collect()
}

#[test]
fn wit_env_interface_equals_the_runtime_import_table() {
    let (resolve, _) = resolve();
    assert_eq!(
        wit_functions(&resolve, EXTISM_ENV),
        table(EXTISM_ENV_FUNCTIONS)
    );
}

#[test]
fn wit_capability_interfaces_equal_the_runtime_tables() {
    let (resolve, _) = resolve();
    assert_eq!(wit_functions(&resolve, KV_NAMESPACE), table(KV_FUNCTIONS));
    assert_eq!(
        wit_functions(&resolve, SECRETS_NAMESPACE),
        table(SECRETS_FUNCTIONS)
    );
}

#[test]
fn pack_world_imports_the_abi_and_exports_the_hooks() {
    let (resolve, package) = resolve();
    let world_id = resolve.packages[package].worlds["pack"];
    let world = &resolve.worlds[world_id];
    let imports_env = world.imports.values().any(|item| {
        matches!(item, WorldItem::Interface { id, .. } if resolve.interfaces[*id].name.as_deref() == Some("env"))
    });
    assert!(imports_env, "world pack imports extism:host/env");
    for hook in ["pre", "post"] {
        let export = world
            .exports
            .get(&WorldKey::Name(hook.to_string()))
            .unwrap_or_else(|| panic!("world pack exports {hook}"));
        let WorldItem::Function(function) = export else {
            panic!("{hook} is a function")
        };
        assert!(
            function.params.is_empty(),
            "{hook} takes nothing: input comes through the ABI"
        );
        assert_eq!(
            function.result,
            Some(Type::S32),
            "{hook} returns the return code"
        );
    }
    let docs = resolve.packages[package]
        .docs
        .contents
        .clone()
        .unwrap_or_default();
    assert!(
        docs.contains(packhost::manifest::MANIFEST_SECTION),
        "the contract names the manifest section"
    );
}

#[test]
fn pdk_built_packs_import_only_what_wit_declares() {
    let (resolve, _) = resolve();
    let declared: BTreeMap<&str, _> = [EXTISM_ENV, KV_NAMESPACE, SECRETS_NAMESPACE]
        .into_iter()
        .map(|module| (module, wit_functions(&resolve, module)))
        .collect();
    for pack in [
        "api_errors",
        "text_tools",
        "hostile",
        "plain",
        "bench",
        "bench_plain",
        "c_bench",
        "webhook_guard",
    ] {
        let info = ModuleInfo::read(&support::pack_bytes(pack)).unwrap();
        for import in &info.imports {
            let declared = declared.get(import.module.as_str()).unwrap_or_else(|| {
                panic!(
                    "{pack} imports from {}, which wit/ does not declare",
                    import.module
                )
            });
            let signature = declared.get(&import.name).unwrap_or_else(|| {
                panic!("{pack} imports {} which wit/ does not declare", import.name)
            });
            assert_eq!(
                (&import.params, &import.results),
                (&signature.0, &signature.1),
                "{pack}: signature of {}",
                import.name
            );
        }
        assert!(
            info.callable_exports().next().is_some(),
            "{pack} has actions"
        );
    }
}

#[test]
fn the_component_world_lends_what_the_runtime_links() {
    let (resolve, package) = resolve();
    let name = &resolve.packages[package].name;
    let world_id = resolve.packages[package].worlds["component"];
    let world = &resolve.worlds[world_id];
    let version = name.version.as_ref().expect("the package is versioned");
    let mut declared: Vec<(String, Vec<&str>)> = world
        .imports
        .values()
        .filter_map(|item| match item {
            WorldItem::Interface { id, .. } => Some(&resolve.interfaces[*id]),
            _ => None,
        })
        .map(|interface| {
            let full = format!(
                "{}:{}/{}@{version}",
                name.namespace,
                name.name,
                interface.name.as_deref().unwrap_or_default()
            );
            let mut functions: Vec<&str> = interface.functions.keys().map(String::as_str).collect();
            functions.sort_unstable();
            (full, functions)
        })
        .collect();
    let mut linked: Vec<(String, Vec<&str>)> = packhost::module::COMPONENT_INTERFACES
        .iter()
        .map(|(interface, functions)| {
            let mut functions = functions.to_vec();
            functions.sort_unstable();
            (interface.to_string(), functions)
        })
        .collect();
    declared.sort();
    linked.sort();
    assert_eq!(declared, linked);
    assert!(
        world.exports.is_empty(),
        "a pack's own world adds the actions; the contract exports nothing"
    );
}
