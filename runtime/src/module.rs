//! Static facts about a WebAssembly module, read without running it: validity, imports,
//! exports, the manifest section; and rewriting that section (`packhost embed`).
//!
//! This is where "only allowed imports" is enforced: a pack may import the Extism ABI
//! (`extism:host/env`), the host functions the host registered and, when the host allows
//! it, WASI; nothing else.

use std::borrow::Cow;

use serde::Serialize;
use wasmparser::{ExternalKind, Parser, Payload, TypeRef, ValType, Validator, WasmFeatures};

use crate::capabilities::host_fn::{HostFunction, ValueType};
use crate::error::{Error, Result};
use crate::manifest::{MANIFEST_EXPORT, MANIFEST_SECTION};

/// The import module of the Extism plugin ABI.
pub const EXTISM_ENV: &str = "extism:host/env";

/// The import module of WASI preview 1.
pub const WASI_PREVIEW1: &str = "wasi_snapshot_preview1";

/// One function of the Extism ABI a pack may import, with its WebAssembly signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvFunction {
    /// The import name.
    pub name: &'static str,
    /// Parameter types (`i32` or `i64`).
    pub params: &'static [&'static str],
    /// Result types.
    pub results: &'static [&'static str],
}

pub(crate) const fn env(
    name: &'static str,
    params: &'static [&'static str],
    results: &'static [&'static str],
) -> EnvFunction {
    EnvFunction {
        name,
        params,
        results,
    }
}

/// Every function a pack may import from `extism:host/env`: the ABI's memory and I/O
/// functions (including the few that only some Extism PDKs use, such as `input_offset`)
/// plus the host services (config, vars, HTTP, logging). `input_set` and `reset` belong to
/// the host side of the ABI and are deliberately absent. `wit/` states the same table, and
/// a test keeps the two from drifting.
pub const EXTISM_ENV_FUNCTIONS: &[EnvFunction] = &[
    env("alloc", &["i64"], &["i64"]),
    env("free", &["i64"], &[]),
    env("length", &["i64"], &["i64"]),
    env("length_unsafe", &["i64"], &["i64"]),
    env("load_u8", &["i64"], &["i32"]),
    env("load_u64", &["i64"], &["i64"]),
    env("store_u8", &["i64", "i32"], &[]),
    env("store_u64", &["i64", "i64"], &[]),
    env("input_length", &[], &["i64"]),
    env("input_load_u8", &["i64"], &["i32"]),
    env("input_load_u64", &["i64"], &["i64"]),
    env("input_offset", &[], &["i64"]),
    env("output_set", &["i64", "i64"], &[]),
    env("output_length", &[], &["i64"]),
    env("output_offset", &[], &["i64"]),
    env("error_set", &["i64"], &[]),
    env("error_get", &[], &["i64"]),
    env("memory_bytes", &[], &["i64"]),
    env("config_get", &["i64"], &["i64"]),
    env("var_get", &["i64"], &["i64"]),
    env("var_set", &["i64", "i64"], &[]),
    env("http_request", &["i64", "i64"], &["i64"]),
    env("http_status_code", &[], &["i32"]),
    env("http_headers", &[], &["i64"]),
    env("log_trace", &["i64"], &[]),
    env("log_debug", &["i64"], &[]),
    env("log_info", &["i64"], &[]),
    env("log_warn", &["i64"], &[]),
    env("log_error", &["i64"], &[]),
    env("get_log_level", &[], &["i32"]),
];

/// Exports whose names start with this belong to packhost's own protocol with its PDK
/// (the manifest, bulk I/O) and are never actions.
pub const RESERVED_EXPORT_PREFIX: &str = "__packhost_";

/// Exports that runtimes call for their own reasons and that are never actions. (`_start`
/// is one: a Go or TinyGo command's `main`, which Extism hosts call by name.)
const RUNTIME_EXPORTS: &[&str] = &[
    MANIFEST_EXPORT,
    "_initialize",
    "__wasm_call_ctors",
    "hs_init",
];

/// One import of the module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Import {
    /// The import module, e.g. `extism:host/env`.
    pub module: String,
    /// The imported name.
    pub name: String,
    /// `func`, `memory`, `table`, `global` or `tag`.
    pub kind: &'static str,
    /// For a function: parameter types, e.g. `["i64"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
    /// For a function: result types.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<String>,
}

/// One export of the module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Export {
    /// The exported name.
    pub name: String,
    /// `func`, `memory`, `table`, `global` or `tag`.
    pub kind: &'static str,
    /// True for a function with the Extism call signature: no parameters, and no result or
    /// one `i32` return code.
    pub callable: bool,
    /// For a function: its parameter and result types, as [`Import`] spells them (what a
    /// linked module's import of it must match).
    #[serde(skip)]
    pub signature: Option<(Vec<String>, Vec<String>)>,
}

/// What a module imports, exports and carries, read without running it.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleInfo {
    /// Size of the module in bytes.
    pub size: usize,
    /// Imports in declaration order.
    pub imports: Vec<Import>,
    /// Exports in declaration order.
    pub exports: Vec<Export>,
    /// Raw bytes of the manifest custom section, when present.
    #[serde(skip)]
    pub manifest_section: Option<Vec<u8>>,
    /// True when the pack is a WebAssembly component (`wit/component.wit`) rather than a
    /// core module on the Extism ABI. A component's imports are whole instances
    /// (`kind: "instance"`, the instance's name as `module`, no `name`), and its callable
    /// exports are its top-level functions of the action shape.
    pub component: bool,
    /// True when the module has a start function (run as it is instantiated).
    pub has_start: bool,
    /// The most elements the module's own tables can ever hold together: the sum of their
    /// declared maxima, or `None` when one of them declares no maximum.
    pub table_elements_max: Option<u64>,
}

impl ModuleInfo {
    /// Validates `bytes` as a WebAssembly module and reads its imports and exports.
    ///
    /// # Errors
    /// `invalid_pack` when the bytes are neither a valid module nor a valid component, or
    /// carry the manifest section twice.
    pub fn read(bytes: &[u8]) -> Result<Self> {
        let component = Parser::is_component(bytes);
        // A component's function bodies (megabytes of them for an interpreter inside) are
        // validated by wasmtime as it compiles them, before any runs; only code it compiled
        // ever reaches the code cache, so checking them here too would only slow each load.
        let types = validate(bytes, !component)?;
        if component {
            return read_component(bytes, &types);
        }

        let mut func_types: Vec<(Vec<String>, Vec<String>)> = Vec::new();
        let mut func_type_of: Vec<u32> = Vec::new();
        let mut imports = Vec::new();
        let mut exported = Vec::new();
        let mut manifest_section = None;
        let mut memories = 0;
        let mut has_start = false;
        let mut table_elements_max = Some(0u64);

        for payload in Parser::new(0).parse_all(bytes) {
            let payload = payload.map_err(|err| Error::invalid_pack(err.to_string()))?;
            match payload {
                Payload::TypeSection(reader) => {
                    for group in reader.into_iter_err_on_gc_types() {
                        let ty = group.map_err(|err| Error::invalid_pack(err.to_string()))?;
                        let names =
                            |types: &[ValType]| types.iter().map(ToString::to_string).collect();
                        func_types.push((names(ty.params()), names(ty.results())));
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import.map_err(|err| Error::invalid_pack(err.to_string()))?;
                        let (params, results) = match import.ty {
                            TypeRef::Func(index) | TypeRef::FuncExact(index) => {
                                func_type_of.push(index);
                                func_types.get(index as usize).cloned().unwrap_or_default()
                            }
                            _ => Default::default(),
                        };
                        imports.push(Import {
                            module: import.module.to_string(),
                            name: import.name.to_string(),
                            kind: type_ref_kind(&import.ty),
                            params,
                            results,
                        });
                    }
                }
                Payload::MemorySection(reader) => memories += reader.count(),
                Payload::StartSection { .. } => has_start = true,
                Payload::TableSection(reader) => {
                    for table in reader {
                        let table = table.map_err(|err| Error::invalid_pack(err.to_string()))?;
                        table_elements_max = table_elements_max
                            .zip(table.ty.maximum)
                            .map(|(sum, max)| sum.saturating_add(max));
                    }
                }
                Payload::FunctionSection(reader) => {
                    for index in reader {
                        func_type_of
                            .push(index.map_err(|err| Error::invalid_pack(err.to_string()))?);
                    }
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export.map_err(|err| Error::invalid_pack(err.to_string()))?;
                        exported.push((export.name.to_string(), export.kind, export.index));
                    }
                }
                Payload::CustomSection(reader) if reader.name() == MANIFEST_SECTION => {
                    if manifest_section.is_some() {
                        return Err(Error::invalid_manifest(format!(
                            "the {MANIFEST_SECTION} section appears twice"
                        )));
                    }
                    manifest_section = Some(reader.data().to_vec());
                }
                _ => {}
            }
        }

        // The Extism ABI knows one memory, and so does the extism engine, which fails to
        // start a module with two; refusing them at load keeps both engines alike (the
        // differential fuzz target found the difference) and keeps memory accounting simple.
        memories += imports
            .iter()
            .filter(|import| import.kind == "memory")
            .count() as u32;
        if memories > 1 {
            return Err(Error::invalid_pack(format!(
                "the module has {memories} memories; a pack has at most one"
            )));
        }

        let exports = exported
            .into_iter()
            .map(|(name, kind, index)| {
                let signature = (kind == ExternalKind::Func)
                    .then(|| {
                        func_type_of
                            .get(index as usize)
                            .and_then(|ty| func_types.get(*ty as usize))
                            .cloned()
                    })
                    .flatten();
                let callable = !RUNTIME_EXPORTS.contains(&name.as_str())
                    && !name.starts_with(RESERVED_EXPORT_PREFIX)
                    && signature.as_ref().is_some_and(|(params, results)| {
                        params.is_empty() && (results.is_empty() || *results == ["i32"])
                    });
                Export {
                    name,
                    kind: external_kind_name(kind),
                    callable,
                    signature,
                }
            })
            .collect();

        Ok(ModuleInfo {
            size: bytes.len(),
            imports,
            exports,
            manifest_section,
            component: false,
            has_start,
            table_elements_max,
        })
    }

    /// Names of exports with the Extism call signature, in declaration order.
    pub fn callable_exports(&self) -> impl Iterator<Item = &str> {
        self.exports
            .iter()
            .filter(|export| export.callable)
            .map(|export| export.name.as_str())
    }

    /// The export named `name`, of any kind.
    pub fn export(&self, name: &str) -> Option<&Export> {
        self.exports.iter().find(|export| export.name == name)
    }

    /// True when the module exports a function named `name`, whatever its signature.
    pub fn exports_function(&self, name: &str) -> bool {
        self.export(name)
            .is_some_and(|export| export.kind == "func")
    }

    /// The function imports a host must lend: every one outside the Extism ABI, WASI and
    /// packhost's own capabilities (`packhost:*`).
    pub fn host_function_imports(&self) -> impl Iterator<Item = &Import> {
        self.imports.iter().filter(|import| {
            import.kind == "func"
                && import.module != EXTISM_ENV
                && import.module != WASI_PREVIEW1
                && !crate::capabilities::host_fn::is_packhost_namespace(&import.module)
        })
    }

    /// True when instantiating the module runs code of its own: a start function, or one of
    /// the initialisers the Extism hosts call (`_initialize`, `__wasm_call_ctors`,
    /// `hs_init`).
    pub fn has_start_up_code(&self) -> bool {
        self.has_start
            || self.exports.iter().any(|export| {
                matches!(
                    export.name.as_str(),
                    "_initialize" | "__wasm_call_ctors" | "hs_init"
                )
            })
    }

    /// True when the module imports WASI's `name`.
    pub fn imports_wasi_function(&self, name: &str) -> bool {
        self.imports
            .iter()
            .any(|import| import.module == WASI_PREVIEW1 && import.name == name)
    }

    /// True when some import comes from WASI.
    pub fn imports_wasi(&self) -> bool {
        self.imports_from(WASI_PREVIEW1)
    }

    /// True when some import comes from `module` (for a component, when it imports that
    /// instance).
    pub fn imports_from(&self, module: &str) -> bool {
        self.imports.iter().any(|import| import.module == module)
    }

    /// Rejects imports that neither packhost, the host nor a linked module provides.
    /// `linked` holds the modules this one may import from by name (an Extism manifest's
    /// other modules), each import from one of them matched against its exports.
    ///
    /// # Errors
    /// `invalid_pack` naming the first import that is not part of the Extism ABI (or of
    /// WASI, when `allow_wasi`), not one of `functions` with the same signature and not an
    /// export of a linked module of the same kind and signature; `host_denied` when the pack
    /// needs WASI and it is not allowed.
    pub fn check_imports(
        &self,
        allow_wasi: bool,
        functions: &[HostFunction],
        linked: &[(&str, &ModuleInfo)],
    ) -> Result<()> {
        if self.component {
            return self.check_component_imports();
        }
        // A start function runs inside instantiation, before a host can lend it anything
        // safely: under the extism engine, one that calls a host-side import dereferences a
        // null pointer in extism 1.30 and takes the whole process down (found by the `abi`
        // fuzz target). Start-up code that needs the host belongs in `_initialize`, which
        // both engines run once the instance is whole.
        let calls_out = self
            .imports
            .iter()
            .any(|import| import.kind == "func" && import.module != WASI_PREVIEW1);
        if self.has_start && calls_out {
            return Err(Error::invalid_pack(
                "the module has a start function and imports host functions; run start-up code \
                 from an `_initialize` export instead",
            ));
        }
        // Extism before 1.0 put its kernel under `env` with `extism_` names; such a plugin
        // needs rebuilding, which a generic "not provided" would not tell its author.
        if let Some(old) = self
            .imports
            .iter()
            .find(|import| import.module == "env" && import.name.starts_with("extism_"))
        {
            return Err(Error::invalid_pack(format!(
                "the plugin imports env::{}, from Extism's ABI before 1.0, which packhost does not run: rebuild it with a current Extism PDK (its imports are {EXTISM_ENV})",
                old.name
            )));
        }
        for import in &self.imports {
            // A linked module answers for its name, but for what it does not export and the
            // host lends there (a module serving some of `extism:host/user`).
            let lent = || {
                functions
                    .iter()
                    .any(|f| f.namespace() == import.module && f.name() == import.name)
            };
            if let Some((_, provider)) = linked.iter().find(|(name, _)| *name == import.module) {
                match provider.export(&import.name) {
                    Some(export) => {
                        check_served(import, export)?;
                        continue;
                    }
                    None if !lent() => {
                        return Err(Error::invalid_pack(format!(
                            "the pack imports {} {:?} from {:?}, which neither the linked \
                             module of that name exports nor the host registered",
                            import.kind, import.name, import.module
                        )));
                    }
                    // The host's function, checked below.
                    None => {}
                }
            }
            let provided = match import.module.as_str() {
                EXTISM_ENV => {
                    let abi = EXTISM_ENV_FUNCTIONS.iter().find(|f| f.name == import.name);
                    match abi {
                        Some(abi) if import.kind == "func" => {
                            if import.params != abi.params || import.results != abi.results {
                                return Err(Error::invalid_pack(format!(
                                    "the pack imports {EXTISM_ENV}::{} as {}; the ABI defines {}",
                                    import.name,
                                    signature_text(&import.params, &import.results),
                                    signature_text(abi.params, abi.results),
                                )));
                            }
                            true
                        }
                        _ => false,
                    }
                }
                WASI_PREVIEW1 if import.kind == "func" => {
                    if !allow_wasi {
                        return Err(Error::new(
                            crate::ErrorKind::HostDenied,
                            format!(
                                "the pack imports WASI ({}) and the host did not set allow_wasi",
                                import.name
                            ),
                        ));
                    }
                    true
                }
                module => match functions
                    .iter()
                    .find(|f| f.namespace() == module && f.name() == import.name)
                {
                    Some(function) if import.kind == "func" => {
                        let (params, results) = function.signature();
                        let names = |types: &[ValueType]| -> Vec<&str> {
                            types.iter().map(|ty| ty.as_str()).collect()
                        };
                        let (params, results) = (names(&params), names(&results));
                        if import.params != params || import.results != results {
                            return Err(Error::invalid_pack(format!(
                                "the pack imports host function {:?} from {module:?} as {}; the host registered {}",
                                import.name,
                                signature_text(&import.params, &import.results),
                                signature_text(&params, &results),
                            )));
                        }
                        true
                    }
                    // A module name nothing answers to: most likely a linked module the
                    // manifest does not list.
                    _ if module != crate::capabilities::host_fn::EXTISM_USER
                        && !functions.iter().any(|f| f.namespace() == module) =>
                    {
                        return Err(Error::invalid_pack(format!(
                            "the pack imports {} {:?} from {module:?}, but no linked module is \
                             named {module:?} and the host lends no functions there",
                            import.kind, import.name
                        )));
                    }
                    // The ABI's module and WASI's functions were matched above.
                    _ if import.kind == "func" => {
                        return Err(Error::invalid_pack(format!(
                            "the pack imports host function {:?} from {module:?}, which the host did not register",
                            import.name
                        )));
                    }
                    _ => false,
                },
            };
            if !provided {
                return Err(Error::invalid_pack(format!(
                    "the pack imports {} {:?} from {:?}, which packhost does not provide",
                    import.kind, import.name, import.module
                )));
            }
        }
        Ok(())
    }
}

/// Validates `bytes`, a module or a component, and returns its top-level types; function
/// bodies are validated only with `bodies`.
///
/// # Errors
/// `invalid_pack` saying what is not valid.
fn validate(bytes: &[u8], bodies: bool) -> Result<wasmparser::types::Types> {
    let invalid = |err| Error::invalid_pack(format!("not a valid WebAssembly module: {err}"));
    let mut validator = Validator::new_with_features(WasmFeatures::all());
    if bodies {
        return validator.validate_all(bytes).map_err(invalid);
    }
    // wasmparser's `validate_all` without its last step, the function bodies.
    let mut parser = Parser::new(0);
    parser.set_features(WasmFeatures::all());
    let mut top_level = None;
    for payload in parser.parse_all(bytes) {
        let payload = payload.map_err(invalid)?;
        // The last end is the top level's.
        if let wasmparser::ValidPayload::End(types) =
            validator.payload(&payload).map_err(invalid)?
        {
            top_level = Some(types);
        }
    }
    top_level.ok_or_else(|| Error::invalid_pack("not a valid WebAssembly module: it has no end"))
}

/// The instance packhost lends every component pack (`wit/component.wit`): logging and
/// config.
pub const COMPONENT_HOST: &str = "packhost:pack/host@0.1.0";

/// Key-value storage for component packs, the same capability as modules' `packhost:host/kv`.
pub const COMPONENT_KV: &str = "packhost:pack/kv@0.1.0";

/// Secrets for component packs, the same capability as modules' `packhost:host/secrets`.
pub const COMPONENT_SECRETS: &str = "packhost:pack/secrets@0.1.0";

/// HTTP for component packs, the same capability as modules' `http_request`.
pub const COMPONENT_HTTP: &str = "packhost:pack/http@0.1.0";

/// The host's own functions for component packs, called by name (modules import them one
/// by one from `extism:host/user`).
pub const COMPONENT_FUNCTIONS: &str = "packhost:pack/functions@0.1.0";

/// Every instance packhost lends component packs, with its functions kebab-case as WIT names
/// them; a test keeps the list and `wit/` from drifting. A component may import any of them
/// and nothing else.
pub const COMPONENT_INTERFACES: &[(&str, &[&str])] = &[
    (COMPONENT_HOST, &["log", "config"]),
    (
        COMPONENT_KV,
        &["get", "set", "delete", "list", "compare-and-set"],
    ),
    (COMPONENT_SECRETS, &["get"]),
    (COMPONENT_HTTP, &["request"]),
    (COMPONENT_FUNCTIONS, &["call"]),
];

/// Reads a validated component: its top-level imports and exports (nested modules and
/// components are its own business) and its top-level manifest section.
fn read_component(bytes: &[u8], types: &wasmparser::types::Types) -> Result<ModuleInfo> {
    let invalid = |err: wasmparser::BinaryReaderError| Error::invalid_pack(err.to_string());
    let types = types.as_ref();
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut manifest_section = None;
    // `parse_all` walks nested modules and components too; each opens with a version
    // and closes with an end.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(invalid)?;
                    imports.push(Import {
                        module: import.name.0.to_string(),
                        name: String::new(),
                        kind: component_type_ref_kind(&import.ty),
                        params: Vec::new(),
                        results: Vec::new(),
                    });
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(invalid)?;
                    let name = export.name.0;
                    let callable = !name.starts_with(RESERVED_EXPORT_PREFIX)
                        && matches!(
                            types.component_entity_type_of_export(name),
                            Some(wasmparser::component_types::ComponentEntityType::Func(id))
                                if has_action_shape(types, id)
                        );
                    exports.push(Export {
                        name: component_action_name(name),
                        kind: component_kind_name(export.kind),
                        callable,
                        signature: None,
                    });
                }
            }
            // Handles of a component's own resources live in a table wasmtime keeps on the
            // host, uncounted by memory_bytes and up to 2^28 entries a table; the pack
            // contract has no resources, so a component that makes them is refused.
            Payload::ComponentCanonicalSection(reader) => {
                for function in reader {
                    use wasmparser::CanonicalFunction as Canon;
                    match function.map_err(invalid)? {
                        Canon::ResourceNew { .. }
                        | Canon::ResourceRep { .. }
                        | Canon::ResourceDrop { .. }
                        | Canon::ResourceDropAsync { .. } => {
                            return Err(Error::invalid_pack(
                                "the component makes resources of its own; packs exchange bytes and lend no resources",
                            ))
                        }
                        _ => {}
                    }
                }
            }
            Payload::CustomSection(reader) if depth == 1 && reader.name() == MANIFEST_SECTION => {
                if manifest_section.is_some() {
                    return Err(Error::invalid_manifest(format!(
                        "the {MANIFEST_SECTION} section appears twice"
                    )));
                }
                manifest_section = Some(reader.data().to_vec());
            }
            _ => {}
        }
    }
    Ok(ModuleInfo {
        size: bytes.len(),
        imports,
        exports,
        manifest_section,
        component: true,
        has_start: false,
        // A component's tables live in its core instances; the memory limiter counts every
        // element they grow to, and nothing declares a bound up front.
        table_elements_max: None,
    })
}

/// The action name of a component's export: WIT names are kebab-case (`count-vowels`),
/// actions snake_case (`count_vowels`), as the Extism ABI's names are in `wit/`; so a
/// component and a module with the same actions answer to the same calls in every host.
pub(crate) fn component_action_name(export: &str) -> String {
    export.replace('-', "_")
}

/// True when component function `id` is an action: `func(list<u8>) -> result<list<u8>,
/// string>`, whatever its parameter is named.
fn has_action_shape(
    types: wasmparser::types::TypesRef<'_>,
    id: wasmparser::component_types::ComponentFuncTypeId,
) -> bool {
    use wasmparser::component_types::{ComponentDefinedType, ComponentValType};
    use wasmparser::PrimitiveValType;
    let defined = |ty: &ComponentValType| match ty {
        ComponentValType::Type(id) => types.get(*id),
        ComponentValType::Primitive(_) => None,
    };
    let is_bytes = |ty: &ComponentValType| {
        matches!(
            defined(ty),
            Some(ComponentDefinedType::List(ComponentValType::Primitive(
                PrimitiveValType::U8
            )))
        )
    };
    let Some(func) = types.get(id) else {
        return false;
    };
    let takes_bytes = matches!(&*func.params, [(_, param)] if is_bytes(param));
    let gives_bytes_or_message = func
        .result
        .as_ref()
        .and_then(defined)
        .is_some_and(|result| {
            matches!(
                result,
                ComponentDefinedType::Result {
                    ok: Some(ok),
                    err: Some(ComponentValType::Primitive(PrimitiveValType::String)),
                } if is_bytes(ok)
            )
        });
    !func.async_ && takes_bytes && gives_bytes_or_message
}

fn component_type_ref_kind(ty: &wasmparser::ComponentTypeRef) -> &'static str {
    match ty {
        wasmparser::ComponentTypeRef::Module(_) => "module",
        wasmparser::ComponentTypeRef::Func(_) => "func",
        wasmparser::ComponentTypeRef::Value(_) => "value",
        wasmparser::ComponentTypeRef::Type(_) => "type",
        wasmparser::ComponentTypeRef::Instance(_) => "instance",
        wasmparser::ComponentTypeRef::Component(_) => "component",
    }
}

fn component_kind_name(kind: wasmparser::ComponentExternalKind) -> &'static str {
    match kind {
        wasmparser::ComponentExternalKind::Module => "module",
        wasmparser::ComponentExternalKind::Func => "func",
        wasmparser::ComponentExternalKind::Value => "value",
        wasmparser::ComponentExternalKind::Type => "type",
        wasmparser::ComponentExternalKind::Instance => "instance",
        wasmparser::ComponentExternalKind::Component => "component",
    }
}

impl ModuleInfo {
    /// Rejects a component's imports other than packhost's instances
    /// ([`COMPONENT_INTERFACES`]). (Their functions' types are checked as the component is
    /// linked, at its first instance.)
    ///
    /// # Errors
    /// `invalid_pack` naming the first import packhost does not provide.
    fn check_component_imports(&self) -> Result<()> {
        let lent = || {
            COMPONENT_INTERFACES
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.imports.iter().find(|import| {
            !(import.kind == "instance"
                && COMPONENT_INTERFACES
                    .iter()
                    .any(|(name, _)| import.module == *name))
        }) {
            Some(import) if import.module.starts_with("wasi:") => {
                Err(Error::invalid_pack(format!(
                    "the component imports {:?}; packhost lends components no WASI yet, only {}",
                    import.module,
                    lent()
                )))
            }
            Some(import) => Err(Error::invalid_pack(format!(
                "the component imports {} {:?}, which packhost does not provide (it lends {})",
                import.kind,
                import.module,
                lent()
            ))),
            None => Ok(()),
        }
    }
}

/// Checks that `export`, of the module linked under `import.module`, is what `import` asks
/// for: the same kind and, for a function, the same signature.
fn check_served(import: &Import, export: &Export) -> Result<()> {
    let from = &import.module;
    if export.kind != import.kind {
        return Err(Error::invalid_pack(format!(
            "the pack imports {:?} from the linked module {from:?} as a {}; it exports a {}",
            import.name, import.kind, export.kind
        )));
    }
    if let Some((params, results)) = &export.signature {
        if *params != import.params || *results != import.results {
            return Err(Error::invalid_pack(format!(
                "the pack imports {:?} from the linked module {from:?} as {}; it exports {}",
                import.name,
                signature_text(&import.params, &import.results),
                signature_text(params, results),
            )));
        }
    }
    Ok(())
}

/// A function signature as error messages show it: `(i64, i32) -> (i64)`.
fn signature_text(params: &[impl AsRef<str>], results: &[impl AsRef<str>]) -> String {
    fn list(types: &[impl AsRef<str>]) -> String {
        types
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<&str>>()
            .join(", ")
    }
    format!("({}) -> ({})", list(params), list(results))
}

/// Returns `module` (a module or a component) with its manifest section replaced by
/// `manifest_json` (or added). A component's is its top-level one; the modules nested in it
/// are kept as they are.
///
/// # Errors
/// `invalid_pack` when `module` is neither a valid module nor a valid component.
pub fn embed_manifest(module: &[u8], manifest_json: &[u8]) -> Result<Vec<u8>> {
    let info = ModuleInfo::read(module)?;
    let manifest = wasm_encoder::CustomSection {
        name: Cow::Borrowed(MANIFEST_SECTION),
        data: Cow::Borrowed(manifest_json),
    };
    let sections = top_level_sections_but_the_manifest(module)?;
    if info.component {
        let mut out = wasm_encoder::Component::new();
        for (id, data) in sections {
            out.section(&wasm_encoder::RawSection { id, data });
        }
        out.section(&manifest);
        Ok(out.finish())
    } else {
        let mut out = wasm_encoder::Module::new();
        for (id, data) in sections {
            out.section(&wasm_encoder::RawSection { id, data });
        }
        out.section(&manifest);
        Ok(out.finish())
    }
}

/// The top-level sections of a module or component (a component's nested modules and
/// components stay whole, inside their own sections), without the manifest section.
fn top_level_sections_but_the_manifest(wasm: &[u8]) -> Result<Vec<(u8, &[u8])>> {
    let mut sections = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|err| Error::invalid_pack(err.to_string()))?;
        match &payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::CustomSection(reader) if reader.name() == MANIFEST_SECTION && depth == 1 => {
                continue
            }
            _ => {}
        }
        // A nested module or component comes whole in its section at the top level; its
        // own payloads follow, one level down.
        if let (1, Some((id, range))) = (depth, payload.as_section()) {
            sections.push((id, &wasm[range]));
        }
    }
    Ok(sections)
}

fn type_ref_kind(ty: &TypeRef) -> &'static str {
    match ty {
        TypeRef::Func(_) | TypeRef::FuncExact(_) => "func",
        TypeRef::Table(_) => "table",
        TypeRef::Memory(_) => "memory",
        TypeRef::Global(_) => "global",
        TypeRef::Tag(_) => "tag",
    }
}

fn external_kind_name(kind: ExternalKind) -> &'static str {
    match kind {
        ExternalKind::Func | ExternalKind::FuncExact => "func",
        ExternalKind::Table => "table",
        ExternalKind::Memory => "memory",
        ExternalKind::Global => "global",
        ExternalKind::Tag => "tag",
    }
}
