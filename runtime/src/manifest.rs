//! The pack manifest: the JSON a pack carries in its `packhost/manifest` custom section,
//! naming the pack, its actions with their JSON Schemas, and the capabilities it asks for.
//!
//! A module without the section still loads: [`PackManifest::synthesize`] describes it
//! from its exports, and it asks for nothing itself (its policy is then the host's whole
//! grant, as in Extism: [`crate::PackOptions::granted_capabilities`]).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::capabilities::host_fn::EXTISM_USER;
use crate::error::{Error, Result};
use crate::hosts::HostPattern;
use crate::module::ModuleInfo;

/// Name of the custom section that holds the manifest JSON.
pub const MANIFEST_SECTION: &str = "packhost/manifest";

/// Export the PDK generates so `packhost embed` can ask a freshly built module for its
/// manifest; it is never an action.
pub const MANIFEST_EXPORT: &str = "__packhost_manifest";

/// What a pack says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackManifest {
    /// Short machine-friendly name, e.g. `api-errors`.
    pub name: String,
    /// The pack's own version, e.g. `1.2.0`.
    pub version: String,
    /// One or two sentences for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Every export meant to be called, including `pre` and `post` when present.
    #[serde(default)]
    pub actions: Vec<ActionSpec>,
    /// What the pack asks the host to grant.
    #[serde(default)]
    pub capabilities: Capabilities,
}

/// One callable export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// The export name.
    pub name: String,
    /// What it does, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The input it takes.
    #[serde(default)]
    pub input: PayloadSpec,
    /// The output it gives.
    #[serde(default)]
    pub output: PayloadSpec,
}

/// The shape of an input or output.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadSpec {
    /// How the bytes are to be read.
    #[serde(default)]
    pub encoding: Encoding,
    /// A JSON Schema of the value, for the `json` encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
}

/// How payload bytes are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Opaque bytes.
    #[default]
    Bytes,
    /// UTF-8 text.
    Text,
    /// A JSON document.
    Json,
    /// Nothing; the payload is ignored or empty.
    None,
}

impl Encoding {
    /// The input bytes a JSON value stands for, for an action reading this encoding: its
    /// JSON text for a JSON action; for any other, a string's own text and any other
    /// value's JSON text. What the runner's `/v1/execute` and flows send.
    pub fn input_from_value(self, value: &serde_json::Value) -> Vec<u8> {
        match value {
            serde_json::Value::String(text) if self != Encoding::Json => text.as_bytes().to_vec(),
            other => serde_json::to_vec(other).unwrap_or_default(),
        }
    }
}

/// What a pack asks the host for. Nothing is granted unless the host grants it too.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// HTTP hosts the pack wants to reach, as host patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_hosts: Vec<String>,
    /// Config keys the pack reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<String>,
    /// Host functions the pack imports (a component: calls through
    /// `packhost:pack/functions`); a host must lend each one to load the pack.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_functions: Vec<HostFunctionSpec>,
    /// Key-value storage (`packhost:host/kv`), scoped to the calling tenant and this pack.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kv: bool,
    /// Names of the secrets the pack reads (`packhost:host/secrets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Guest paths of the host directories the pack opens through WASI (`allowed_paths`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

/// One host function a pack imports, as its manifest describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFunctionSpec {
    /// The import name.
    pub name: String,
    /// The import module. Default `extism:host/user`.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// What it does, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The input the pack sends.
    #[serde(default)]
    pub input: PayloadSpec,
    /// The output the pack expects back.
    #[serde(default)]
    pub output: PayloadSpec,
}

fn default_namespace() -> String {
    EXTISM_USER.to_string()
}

/// What a module without a manifest imports from its host: every function import outside
/// the Extism ABI and WASI, with bytes in and out as far as anyone can tell.
fn imported_host_functions(module: &ModuleInfo) -> Vec<HostFunctionSpec> {
    module
        .host_function_imports()
        .map(|import| HostFunctionSpec {
            name: import.name.clone(),
            namespace: import.module.clone(),
            description: String::new(),
            input: PayloadSpec::default(),
            output: PayloadSpec::default(),
        })
        .collect()
}

/// A component calls the host's functions by name through `packhost:pack/functions`, which
/// reaches only `extism:host/user`: a function it declares must be of that module, and the
/// component must import the interface.
fn check_component_function(function: &HostFunctionSpec, component: &ModuleInfo) -> Result<()> {
    if function.namespace != EXTISM_USER {
        return Err(Error::invalid_manifest(format!(
            "manifest: host function {:?} of {:?}: a component calls only functions of {EXTISM_USER:?}",
            function.name, function.namespace
        )));
    }
    if !component.imports_from(crate::module::COMPONENT_FUNCTIONS) {
        return Err(Error::invalid_manifest(format!(
            "manifest: host function {:?} is declared, but the component does not import {}, \
             through which it would call it",
            function.name,
            crate::module::COMPONENT_FUNCTIONS
        )));
    }
    Ok(())
}

impl PackManifest {
    /// Parses and checks the manifest section against the module it came from.
    ///
    /// # Errors
    /// `invalid_manifest` when the JSON is malformed, has unknown fields, names an action
    /// twice, declares an action the module does not export, or asks for a bad host pattern.
    pub fn parse(section: &[u8], module: &ModuleInfo) -> Result<Self> {
        let manifest: PackManifest = serde_json::from_slice(section)
            .map_err(|err| Error::invalid_manifest(format!("manifest section: {err}")))?;
        manifest.check(module)?;
        Ok(manifest)
    }

    fn check(&self, module: &ModuleInfo) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::invalid_manifest("manifest: name is empty"));
        }
        if self.version.trim().is_empty() {
            return Err(Error::invalid_manifest("manifest: version is empty"));
        }
        let mut seen = BTreeSet::new();
        for action in &self.actions {
            if !seen.insert(action.name.as_str()) {
                return Err(Error::invalid_manifest(format!(
                    "manifest: action {:?} is declared twice",
                    action.name
                )));
            }
            if !module.callable_exports().any(|name| name == action.name) {
                return Err(Error::invalid_manifest(format!(
                    "manifest: action {:?} is not exported as a callable function",
                    action.name
                )));
            }
        }
        let mut declared = BTreeSet::new();
        for function in &self.capabilities.host_functions {
            if !declared.insert((function.namespace.as_str(), function.name.as_str())) {
                return Err(Error::invalid_manifest(format!(
                    "manifest: host function {:?} of {:?} is declared twice",
                    function.name, function.namespace
                )));
            }
            if module.component {
                check_component_function(function, module)?;
                continue;
            }
            let imported = module.imports.iter().any(|import| {
                import.kind == "func"
                    && import.module == function.namespace
                    && import.name == function.name
            });
            if !imported {
                return Err(Error::invalid_manifest(format!(
                    "manifest: host function {:?} of {:?} is not imported by the module",
                    function.name, function.namespace
                )));
            }
        }
        for host in &self.capabilities.http_hosts {
            HostPattern::parse(host).map_err(|why| {
                Error::invalid_manifest(format!("manifest: http host {host:?} {why}"))
            })?;
        }
        Ok(())
    }

    /// Describes a module that carries no manifest: its callable exports become actions
    /// taking and giving bytes, it lists the host functions it imports, and it asks for no
    /// other capabilities.
    pub fn synthesize(name: &str, module: &ModuleInfo) -> Self {
        PackManifest {
            name: name.to_string(),
            version: "0.0.0".to_string(),
            description: String::new(),
            actions: module
                .callable_exports()
                .map(|name| ActionSpec {
                    name: name.to_string(),
                    description: String::new(),
                    input: PayloadSpec::default(),
                    output: PayloadSpec::default(),
                })
                .collect(),
            capabilities: Capabilities {
                host_functions: imported_host_functions(module),
                ..Capabilities::default()
            },
        }
    }

    /// The action of that name, if declared.
    pub fn action(&self, name: &str) -> Option<&ActionSpec> {
        self.action_index(name).map(|index| &self.actions[index])
    }

    /// Where the action of that name is in `actions`, if declared.
    pub fn action_index(&self, name: &str) -> Option<usize> {
        self.actions.iter().position(|action| action.name == name)
    }
}
