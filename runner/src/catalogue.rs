//! The packs and flows a runner serves, loaded at start and on each reload, and how a
//! request's `pack` names one: `name` (its newest version), `name@version`, or `sha256:HEX`
//! (its digest). A flow's steps name packs the same way.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use packhost::{Error, ErrorKind, Flow, FlowPacks, Pack, Result};
use serde_json::json;

use crate::config::RunnerConfig;
use crate::mcp::Toolbox;

/// One pack being served.
#[derive(Clone)]
pub(crate) struct Served {
    pub pack: Pack,
    pub name: String,
    pub version: String,
    /// `sha256:HEX` of the module.
    pub digest: String,
    /// Where it came from, as configured.
    pub source: String,
}

/// Every pack a runner serves, its actions as MCP tools, and the flows over them: swapped
/// as one, so a flow always runs on the packs it was checked against.
pub(crate) struct Catalogue {
    packs: Vec<Served>,
    tools: Toolbox,
    flows: Flows,
}

/// The flows a runner serves.
#[derive(Default)]
struct Flows {
    by_name: BTreeMap<String, Arc<Flow>>,
    /// Each flow file and the text it was read from, to tell whether a reload changed any.
    texts: Vec<(String, String)>,
}

/// A flow's steps find their packs as a request's `pack` does.
impl FlowPacks for Catalogue {
    fn pack(&self, name: &str) -> Option<Pack> {
        self.find(name).map(|served| served.pack.clone())
    }
}

impl Catalogue {
    /// Loads every pack the configuration names.
    ///
    /// # Errors
    /// The first pack that does not load, with its path in the message; `invalid_options`
    /// for an empty list or two different packs with one name and version.
    pub fn load(config: &RunnerConfig) -> Result<Catalogue> {
        Self::reload(config, None)
    }

    /// Loads every pack again, for a swap: `oci://` tags are pulled again (a registry that
    /// cannot be reached leaves the tag where it was pinned), and a pack whose bytes did not
    /// change keeps its loaded instance (and its warm instances) from `previous`.
    ///
    /// # Errors
    /// As [`Catalogue::load`].
    pub fn reload(config: &RunnerConfig, previous: Option<&Catalogue>) -> Result<Catalogue> {
        packhost_oci::register();
        packhost_redis::register();
        let mut packs: Vec<Served> = Vec::new();
        for entry in &config.packs {
            let (sources, from_folder) = expand(entry)?;
            for source in sources {
                if previous.is_some() && source.starts_with("oci://") {
                    if let Err(err) = packhost_oci::pull_to_default_store(&source) {
                        tracing::warn!("{source}: {}; keeping the pinned pack", err.message());
                    }
                }
                let before = previous.and_then(|previous| previous.by_source(&source));
                let served = match load_one(config, &source) {
                    // Unchanged bytes keep the loaded pack, and its warm instances.
                    Ok(served) => match before {
                        Some(old) if old.digest == served.digest => old.clone(),
                        _ => served,
                    },
                    // A folder is whatever packs it holds: one that needs what this runner
                    // does not lend (host functions, say) is left out, loudly; on a reload,
                    // one that no longer loads (a file half copied, say) keeps serving the
                    // version that did. A pack named on its own must load.
                    Err(err) if from_folder => match before {
                        Some(old) => {
                            tracing::warn!(
                                "{}: error[{}]; still serving the version loaded before",
                                err.message(),
                                err.code()
                            );
                            old.clone()
                        }
                        None => {
                            tracing::warn!("not serving {}: error[{}]", err.message(), err.code());
                            continue;
                        }
                    },
                    Err(err) => return Err(err),
                };
                match packs
                    .iter()
                    .find(|known| known.name == served.name && known.version == served.version)
                {
                    Some(known) if known.digest == served.digest => {}
                    Some(known) => {
                        return Err(Error::new(
                            ErrorKind::InvalidOptions,
                            format!(
                                "{} and {} are both {}@{} but differ; serve one",
                                known.source, served.source, served.name, served.version
                            ),
                        ))
                    }
                    None => packs.push(served),
                }
            }
        }
        if packs.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidOptions,
                "no packs to serve: name .wasm files, folders of them or oci:// references",
            ));
        }
        let mut catalogue = Catalogue {
            packs,
            tools: Toolbox::default(),
            flows: Flows::default(),
        };
        catalogue.tools = Toolbox::new(&catalogue);
        catalogue.flows = load_flows(config, &catalogue)?;
        Ok(catalogue)
    }

    /// Whether `other` serves the same packs and flows.
    pub fn same_as(&self, other: &Catalogue) -> bool {
        self.versions() == other.versions() && self.flows.texts == other.flows.texts
    }

    /// The flow served as `name`.
    pub fn flow(&self, name: &str) -> Option<&Arc<Flow>> {
        self.flows.by_name.get(name)
    }

    /// What `GET /v1/flows` answers: each flow's name, description and the packs it names.
    pub fn describe_flows(&self) -> serde_json::Value {
        let flows: Vec<_> = self
            .flows
            .by_name
            .values()
            .map(|flow| {
                json!({
                    "name": flow.name(),
                    "description": flow.description(),
                    "packs": flow.pack_names(),
                })
            })
            .collect();
        json!({ "flows": flows })
    }

    /// Each served name's newest version, in the order first served.
    pub fn newest(&self) -> Vec<&Served> {
        let mut names: Vec<&str> = Vec::new();
        for served in &self.packs {
            if !names.contains(&served.name.as_str()) {
                names.push(&served.name);
            }
        }
        names
            .into_iter()
            .filter_map(|name| self.find(name))
            .collect()
    }

    /// The actions as MCP tools.
    pub fn tools(&self) -> &Toolbox {
        &self.tools
    }

    /// The pack loaded from `source`.
    fn by_source(&self, source: &str) -> Option<&Served> {
        self.packs.iter().find(|served| served.source == source)
    }

    /// `name@version` of every pack, for a reload's report.
    pub fn versions(&self) -> Vec<String> {
        self.packs
            .iter()
            .map(|served| format!("{}@{} ({})", served.name, served.version, served.digest))
            .collect()
    }

    /// The pack a request names, if served.
    pub fn find(&self, reference: &str) -> Option<&Served> {
        if packhost::is_digest(reference) {
            return self.packs.iter().find(|served| served.digest == reference);
        }
        match reference.split_once('@') {
            Some((name, version)) => self
                .packs
                .iter()
                .find(|served| served.name == name && served.version == version),
            None => self
                .packs
                .iter()
                .filter(|served| served.name == reference)
                .max_by(|a, b| version_order(&a.version, &b.version)),
        }
    }

    /// What `GET /v1/packs` answers: each pack's name, version, digest and actions with
    /// their descriptions and schemas.
    pub fn describe(&self) -> serde_json::Value {
        let packs: Vec<_> = self
            .packs
            .iter()
            .map(|served| {
                let manifest = served.pack.manifest();
                json!({
                    "name": served.name,
                    "version": served.version,
                    "digest": served.digest,
                    "description": manifest.description,
                    "actions": manifest.actions,
                })
            })
            .collect();
        json!({ "packs": packs })
    }
}

/// Newer versions sort higher: by semver where both parse, else as text.
fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

/// A folder stands for its `.wasm` files, in name order; anything else for itself. Whether
/// the entry was a folder comes with them.
fn expand(entry: &str) -> Result<(Vec<String>, bool)> {
    expand_to(entry, &["wasm"])
}

/// A folder stands for the files in it with one of `extensions`, in name order; anything
/// else for itself.
fn expand_to(entry: &str, extensions: &[&str]) -> Result<(Vec<String>, bool)> {
    let path = Path::new(entry);
    if !path.is_dir() {
        return Ok((vec![entry.to_string()], false));
    }
    let listing = std::fs::read_dir(path)
        .map_err(|err| Error::new(ErrorKind::Io, format!("{entry}: {err}")))?;
    let mut files: Vec<String> = listing
        .filter_map(|item| item.ok().map(|item| item.path()))
        .filter(|file| {
            file.extension()
                .is_some_and(|ext| extensions.iter().any(|wanted| ext == *wanted))
                && file.is_file()
        })
        .map(|file| file.to_string_lossy().into_owned())
        .collect();
    files.sort();
    Ok((files, true))
}

/// Reads every flow the configuration names and checks each against `packs`: a flow that
/// does not read, names a pack or action not served, or takes another's name fails the
/// load (a reload then keeps the previous set).
fn load_flows(config: &RunnerConfig, packs: &Catalogue) -> Result<Flows> {
    let mut flows = Flows::default();
    for entry in &config.flows {
        let (files, _) = expand_to(entry, &["json", "yaml", "yml"])?;
        for file in files {
            let in_file = naming(&file);
            let text = std::fs::read_to_string(&file)
                .map_err(|err| Error::new(ErrorKind::Io, format!("{file}: {err}")))?;
            let flow = read_flow(&file, &text).map_err(in_file)?;
            flow.check(packs).map_err(in_file)?;
            let name = flow.name().to_string();
            if flows.by_name.insert(name.clone(), Arc::new(flow)).is_some() {
                return Err(Error::new(
                    ErrorKind::InvalidOptions,
                    format!("{file}: another flow is already named {name:?}"),
                ));
            }
            flows.texts.push((file, text));
        }
    }
    Ok(flows)
}

/// A flow definition from a file's text: YAML for `.yaml` and `.yml`, else JSON.
fn read_flow(file: &str, text: &str) -> Result<Flow> {
    if file.ends_with(".yaml") || file.ends_with(".yml") {
        let value: serde_json::Value = serde_norway::from_str(text).map_err(|err| {
            Error::new(ErrorKind::InvalidOptions, format!("flow: not YAML: {err}"))
        })?;
        Flow::from_value(value)
    } else {
        Flow::from_json(text)
    }
}

/// What turns an error about `source` (a pack or flow file, a reference) into one that says
/// which.
fn naming(source: &str) -> impl Fn(Error) -> Error + Copy + '_ {
    move |err| Error::new(err.kind().clone(), format!("{source}: {}", err.message()))
}

fn load_one(config: &RunnerConfig, source: &str) -> Result<Served> {
    let with_context = naming(source);
    let mut pack =
        Pack::load_reference(source, config.base_options()?, Vec::new()).map_err(with_context)?;
    // Options are chosen by the pack's name, which only its manifest tells.
    let name = pack.manifest().name.clone();
    if config.pack_options.contains_key(&name) {
        pack = Pack::load_reference(source, config.options_for(&name)?, Vec::new())
            .map_err(with_context)?;
    }
    Ok(Served {
        name,
        version: pack.manifest().version.clone(),
        digest: format!("sha256:{}", pack.id()),
        source: source.to_string(),
        pack,
    })
}
