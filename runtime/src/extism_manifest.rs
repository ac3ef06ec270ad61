//! Extism manifests: a host's description of a plugin in Extism's JSON format (where its
//! module comes from, memory, config, hosts, timeout), read and mapped onto packhost's own
//! options, so a host coming from Extism keeps the manifests it has.
//!
//! The format is read by packhost's own types, not the `extism-manifest` crate's: that
//! crate also accepts a module as `{"ptr": …, "len": …}`, which it turns into a slice of
//! the reading process's memory, and a manifest is text a host may take from anywhere.
//! What packhost cannot honour is refused with `invalid_options`, never ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};
use crate::link::{LinkedModule, MAIN_MODULE, MAX_LINKED_MODULES};
use crate::options::PackOptions;

/// Longest a module download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest module a manifest may name by URL.
const MAX_DOWNLOAD_BYTES: u64 = 512 << 20;

/// An Extism manifest, as JSON hosts pass it to Extism's `Plugin` constructors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtismManifest {
    /// Where the modules come from: the main module and those it links with by name.
    #[serde(default)]
    pub wasm: Vec<WasmSource>,
    /// Memory caps.
    #[serde(default)]
    pub memory: ExtismMemory,
    /// Config values the plugin reads.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Hosts the plugin may reach over HTTP (`*` for any).
    #[serde(default)]
    pub allowed_hosts: Option<Vec<String>>,
    /// Host directories mounted into the plugin's WASI file system (not supported yet).
    #[serde(default)]
    pub allowed_paths: Option<BTreeMap<String, String>>,
    /// Wall-clock limit of one call, in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Extism's `memory` object.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtismMemory {
    /// Most 64 KiB pages of memory.
    pub max_pages: Option<u32>,
    /// Largest HTTP response body.
    pub max_http_response_bytes: Option<u64>,
    /// Most bytes of vars.
    pub max_var_bytes: Option<u64>,
}

/// One `wasm` entry: a module by `path`, inline `data` (base64) or `url`, with an optional
/// `name` and SHA-256 `hash`. `Debug` shows header names only: their values are often
/// credentials.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmSource {
    /// A file, relative to the process's working directory as in Extism.
    pub path: Option<String>,
    /// The module itself, in standard base64.
    pub data: Option<String>,
    /// Where to download the module (GET over HTTP or HTTPS).
    pub url: Option<String>,
    /// Headers for the download.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The download's method; only `GET`.
    pub method: Option<String>,
    /// The module's name, which modules importing from it use (`main`, or none, for the
    /// main module); also the pack's name when the main module carries no manifest.
    pub name: Option<String>,
    /// The module's SHA-256 in hex: a module with any other hash is refused.
    pub hash: Option<String>,
}

impl std::fmt::Debug for WasmSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmSource")
            .field("path", &self.path)
            .field(
                "data",
                &self
                    .data
                    .as_ref()
                    .map(|data| format!("{} bytes of base64", data.len())),
            )
            .field("url", &self.url.as_deref().map(without_query))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("method", &self.method)
            .field("name", &self.name)
            .field("hash", &self.hash)
            .finish()
    }
}

/// A URL as messages show it: without its query, where presigned links keep their tokens.
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// A manifest's modules, fetched and checked, and the options it maps to: what
/// [`Pack::load_resolved`](crate::Pack::load_resolved) loads.
#[derive(Debug, Clone)]
pub struct ResolvedManifest {
    /// The main module.
    pub bytes: Vec<u8>,
    /// What the pack is called when the module carries no packhost manifest: the entry's
    /// `name`, else its file's stem, else `main`.
    pub name: String,
    /// The modules the main one imports from by name, in the manifest's order.
    pub linked: Vec<LinkedModule>,
    /// The options with the manifest's fields applied.
    pub options: PackOptions,
}

impl ResolvedManifest {
    /// The plugin as a host sees it: the main module's facts, with every import of its
    /// modules that none of them serves (what the host must lend; the `packhost` command
    /// lends stand-ins for them).
    ///
    /// # Errors
    /// `invalid_pack` for a module that does not validate or modules that cannot be linked.
    pub fn host_view(&self) -> Result<std::sync::Arc<crate::module::ModuleInfo>> {
        let read = crate::pack::read_module_cached;
        let main = read(&crate::pack::module_id(&self.bytes), &self.bytes)?;
        Ok(crate::link::Linking::new(&main, &self.linked, read)?.host_view)
    }
}

fn refuse(message: impl Into<String>) -> Error {
    Error::invalid_options(message)
}

impl ExtismManifest {
    /// Reads a manifest from JSON text.
    ///
    /// # Errors
    /// `invalid_options` for malformed JSON or fields Extism does not define.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|err| refuse(format!("Extism manifest: {err}")))
    }

    /// Fetches every module, checks each hash, picks the main module and maps the rest onto
    /// `options`. An option left
    /// at its default takes the manifest's value; one set to anything else that differs from
    /// the manifest's is refused, so neither of the host's two words quietly overrides the
    /// other.
    ///
    /// # Errors
    /// `invalid_options` for what packhost cannot honour yet or a conflicting field;
    /// `invalid_pack` for a module whose hash differs; `io` when it cannot be read or
    /// downloaded.
    pub fn resolve(self, mut options: PackOptions) -> Result<ResolvedManifest> {
        if self.wasm.len() > MAX_LINKED_MODULES + 1 {
            return Err(refuse(format!(
                "Extism manifest: {} wasm entries; packhost links at most {MAX_LINKED_MODULES} \
                 modules with the main one",
                self.wasm.len()
            )));
        }
        let main = main_entry(&self.wasm)?;
        let memory = &self.memory;
        let defaults = PackOptions::default();
        if let Some(bytes) = memory.max_var_bytes {
            agree(
                "memory.max_var_bytes",
                "limits.max_var_bytes",
                &mut options.limits.max_var_bytes,
                bytes,
                defaults.limits.max_var_bytes,
            )?;
        }
        if let Some(pages) = memory.max_pages {
            if pages == 0 {
                return Err(refuse(
                    "Extism manifest: memory.max_pages must be at least 1",
                ));
            }
            let bytes = u64::from(pages) * 65536;
            agree(
                "memory.max_pages",
                "limits.memory_bytes",
                &mut options.limits.memory_bytes,
                bytes,
                defaults.limits.memory_bytes,
            )?;
        }
        if let Some(bytes) = memory.max_http_response_bytes {
            agree(
                "memory.max_http_response_bytes",
                "http.max_response_bytes",
                &mut options.http.max_response_bytes,
                Some(bytes),
                None,
            )?;
        }
        if let Some(ms) = self.timeout_ms {
            agree(
                "timeout_ms",
                "limits.timeout_ms",
                &mut options.limits.timeout_ms,
                ms,
                defaults.limits.timeout_ms,
            )?;
        }
        if let Some(paths) = self.allowed_paths {
            agree(
                "allowed_paths",
                "allowed_paths",
                &mut options.allowed_paths,
                paths,
                BTreeMap::new(),
            )?;
        }
        if let Some(hosts) = self.allowed_hosts {
            agree(
                "allowed_hosts",
                "allowed_hosts",
                &mut options.allowed_hosts,
                hosts,
                Vec::new(),
            )?;
        }
        for (key, value) in self.config {
            match options.config.get(&key) {
                Some(set) if *set != value => {
                    return Err(refuse(format!(
                        "Extism manifest: config {key:?} differs from the options' value"
                    )))
                }
                _ => {
                    options.config.insert(key, value);
                }
            }
        }
        let mut linked = Vec::with_capacity(self.wasm.len() - 1);
        let mut main_module = None;
        for (index, source) in self.wasm.iter().enumerate() {
            let (bytes, fallback_name) = source.fetch_checked()?;
            if index == main {
                main_module = Some((bytes, source.name.clone().unwrap_or(fallback_name)));
            } else {
                linked.push(LinkedModule {
                    // Every entry but the main one has a name (`main_entry`).
                    name: source.name.clone().unwrap_or_default(),
                    bytes,
                });
            }
        }
        let (bytes, name) = main_module.expect("main_entry names an entry of the list");
        Ok(ResolvedManifest {
            bytes,
            name,
            linked,
            options,
        })
    }
}

/// Which entry is the main module, by Extism's rule: the one named `main` or without a
/// name, else the last; every other entry needs a name of its own, the module name its
/// importers use.
fn main_entry(wasm: &[WasmSource]) -> Result<usize> {
    if wasm.is_empty() {
        return Err(refuse("Extism manifest: wasm names no module"));
    }
    if let [_] = wasm {
        return Ok(0);
    }
    let is_main = |source: &WasmSource| {
        source
            .name
            .as_deref()
            .is_none_or(|name| name == MAIN_MODULE)
    };
    let mains: Vec<usize> = (0..wasm.len())
        .filter(|&index| is_main(&wasm[index]))
        .collect();
    match mains.as_slice() {
        [] => Ok(wasm.len() - 1),
        [one] => Ok(*one),
        _ => Err(refuse(
            "Extism manifest: several wasm entries are the main module (named \"main\" or \
             unnamed); name each linked module after the module name its importers use",
        )),
    }
}

/// Sets `option` to the manifest's `value` unless the options hold a non-default value that
/// differs from it.
fn agree<T: PartialEq>(
    field: &str,
    option_name: &str,
    option: &mut T,
    value: T,
    default: T,
) -> Result<()> {
    if *option != default && *option != value {
        return Err(refuse(format!(
            "Extism manifest: {field} and the option {option_name} are both set, to different \
             values"
        )));
    }
    *option = value;
    Ok(())
}

impl WasmSource {
    /// The module's bytes, checked against `hash` when it is given, and the name its source
    /// suggests.
    fn fetch_checked(&self) -> Result<(Vec<u8>, String)> {
        let (bytes, fallback_name) = self.fetch()?;
        if let Some(expected) = &self.hash {
            let actual = crate::pack::module_id(&bytes);
            if !actual.eq_ignore_ascii_case(expected.trim()) {
                let which = self.name.as_deref().map_or_else(
                    || "the module".to_string(),
                    |name| format!("the module {name:?}"),
                );
                return Err(Error::new(
                    ErrorKind::InvalidPack,
                    format!(
                        "{which}'s SHA-256 is {actual}, but the Extism manifest expects \
                         {expected}"
                    ),
                ));
            }
        }
        Ok((bytes, fallback_name))
    }

    /// The module's bytes and the name its source suggests.
    fn fetch(&self) -> Result<(Vec<u8>, String)> {
        match (&self.path, &self.data, &self.url) {
            (Some(path), None, None) => {
                let bytes = std::fs::read(path)
                    .map_err(|err| Error::new(ErrorKind::Io, format!("{path}: {err}")))?;
                let stem = std::path::Path::new(path)
                    .file_stem()
                    .map(|stem| stem.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "main".to_string());
                Ok((bytes, stem))
            }
            (None, Some(data), None) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|err| refuse(format!("Extism manifest: wasm data: {err}")))?;
                Ok((bytes, "main".to_string()))
            }
            (None, None, Some(url)) => Ok((download(url, self)?, "main".to_string())),
            _ => Err(refuse(
                "Extism manifest: each wasm entry needs exactly one of path, data and url",
            )),
        }
    }
}

/// Downloads a module the host's manifest names: the host's own request, so no grant
/// applies, but it is bounded in time and size.
fn download(url: &str, source: &WasmSource) -> Result<Vec<u8>> {
    if let Some(method) = source.method.as_deref() {
        if !method.eq_ignore_ascii_case("GET") {
            return Err(refuse(format!(
                "Extism manifest: wasm url: method {method:?} is not supported; use GET"
            )));
        }
    }
    let shown = without_query(url);
    let failed = |err: ureq::Error| Error::new(ErrorKind::Io, format!("{shown}: {err}"));
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(DOWNLOAD_TIMEOUT))
        .build()
        .new_agent();
    let mut request = agent.get(url);
    for (name, value) in &source.headers {
        request = request.header(name, value);
    }
    let mut response = request.call().map_err(failed)?;
    response
        .body_mut()
        .with_config()
        .limit(MAX_DOWNLOAD_BYTES)
        .read_to_vec()
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(manifest: serde_json::Value, options: PackOptions) -> Result<ResolvedManifest> {
        ExtismManifest::from_json(&manifest.to_string())?.resolve(options)
    }

    const EMPTY_MODULE: &[u8] = b"\0asm\x01\0\0\0";

    fn inline() -> serde_json::Value {
        serde_json::json!({"data": base64::engine::general_purpose::STANDARD.encode(EMPTY_MODULE)})
    }

    #[test]
    fn fields_map_onto_the_options() {
        let resolved = resolve(
            serde_json::json!({
                "wasm": [inline()],
                "memory": {"max_pages": 4, "max_http_response_bytes": 1000, "max_var_bytes": 64},
                "config": {"greeting": "Yo"},
                "allowed_hosts": ["*"],
                "timeout_ms": 250,
            }),
            PackOptions::default(),
        )
        .unwrap();
        assert_eq!(resolved.bytes, EMPTY_MODULE);
        assert_eq!(resolved.name, "main");
        let options = resolved.options;
        assert_eq!(options.limits.memory_bytes, 4 * 65536);
        assert_eq!(options.limits.timeout_ms, 250);
        assert_eq!(options.http.max_response_bytes, Some(1000));
        assert_eq!(options.limits.max_var_bytes, 64);
        assert_eq!(options.allowed_hosts, ["*"]);
        assert_eq!(options.config["greeting"], "Yo");
    }

    #[test]
    fn a_field_set_both_ways_differently_is_refused() {
        let mut options = PackOptions::default();
        options.limits.timeout_ms = 100;
        let err = resolve(
            serde_json::json!({"wasm": [inline()], "timeout_ms": 250}),
            options.clone(),
        )
        .err()
        .unwrap();
        assert_eq!(err.code(), "invalid_options");
        assert!(err.message().contains("timeout_ms"), "{err}");
        // The same value both ways is no conflict.
        options.limits.timeout_ms = 250;
        resolve(
            serde_json::json!({"wasm": [inline()], "timeout_ms": 250}),
            options,
        )
        .unwrap();
    }

    #[test]
    fn what_packhost_cannot_honour_is_refused_by_name() {
        let cases = [
            (serde_json::json!({"wasm": []}), "names no module"),
            (
                serde_json::json!({"wasm": [inline(), inline()]}),
                "several wasm entries are the main module",
            ),
            (
                serde_json::json!({"wasm": [{"path": "a.wasm", "data": "AA=="}]}),
                "exactly one of",
            ),
            (
                serde_json::json!({"wasm": [inline()], "allowed_host": ["*"]}),
                "allowed_host",
            ),
        ];
        for (manifest, says) in cases {
            let err = resolve(manifest.clone(), PackOptions::default())
                .err()
                .unwrap();
            assert_eq!(err.code(), "invalid_options", "{manifest}");
            assert!(err.message().contains(says), "{manifest}: {err}");
        }
    }

    #[test]
    fn the_main_module_is_the_unnamed_one_else_the_last() {
        let named = |name: &str| {
            let mut source = inline();
            source["name"] = serde_json::json!(name);
            source
        };
        let resolved = resolve(
            serde_json::json!({"wasm": [named("a"), inline(), named("b")]}),
            PackOptions::default(),
        )
        .unwrap();
        let linked: Vec<&str> = resolved.linked.iter().map(|m| m.name.as_str()).collect();
        assert_eq!((resolved.name.as_str(), linked), ("main", vec!["a", "b"]));
        let resolved = resolve(
            serde_json::json!({"wasm": [named("a"), named("app")]}),
            PackOptions::default(),
        )
        .unwrap();
        let linked: Vec<&str> = resolved.linked.iter().map(|m| m.name.as_str()).collect();
        assert_eq!((resolved.name.as_str(), linked), ("app", vec!["a"]));
    }

    #[test]
    fn debug_keeps_credentials_out() {
        let source = WasmSource {
            url: Some("https://example.com/p.wasm?X-Amz-Signature=secret".to_string()),
            headers: [("authorization".to_string(), "Bearer secret".to_string())].into(),
            ..WasmSource::default()
        };
        let shown = format!("{source:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("authorization"), "{shown}");
    }

    #[test]
    fn a_pointer_instead_of_data_is_refused_not_read() {
        // extism-manifest would read process memory at this address.
        let err = resolve(
            serde_json::json!({"wasm": [{"data": {"ptr": 4096, "len": 8}}]}),
            PackOptions::default(),
        )
        .err()
        .unwrap();
        assert_eq!(err.code(), "invalid_options");
    }

    #[test]
    fn a_wrong_hash_is_refused_and_the_right_one_in_any_case_accepted() {
        let mut source = inline();
        source["hash"] = serde_json::json!("00".repeat(32));
        let err = resolve(
            serde_json::json!({"wasm": [source.clone()]}),
            PackOptions::default(),
        )
        .err()
        .unwrap();
        assert_eq!(err.code(), "invalid_pack");
        assert!(err.message().contains("SHA-256"), "{err}");
        source["hash"] = serde_json::json!(crate::pack::module_id(EMPTY_MODULE).to_uppercase());
        resolve(
            serde_json::json!({"wasm": [source]}),
            PackOptions::default(),
        )
        .unwrap();
    }
}
