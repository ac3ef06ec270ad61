//! Flows: packs' actions composed as data. A flow's steps name a pack and an action, build
//! their input from the flow's input and earlier outputs (JSON Pointer), may run only when a
//! condition on earlier outputs holds, may run in parallel branches, and each call ends at
//! the earlier of its step's `timeout_ms` and the flow's one deadline.
//!
//! The definition is checked whole when it is read (every pointer names the input or a step
//! that has run by then, ids are unique), so a flow fails at run time only because of its
//! data or a step's call. Packs are looked up by name at each run ([`FlowPacks`]), so a host
//! that swaps a pack's version swaps it for its flows too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cancel::CancelToken;
use crate::capabilities::audit::AuditEntry;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::Encoding;
use crate::options::CallOptions;
use crate::pack::Pack;
use crate::usage::{LogRecord, Usage};

/// Most steps one flow may hold, parallel branches included: a definition is data a host
/// may accept from its users, and each step may start a thread.
pub const MAX_FLOW_STEPS: usize = 64;

/// Most branches one `parallel` may have: each runs on a thread and instance of its own.
pub const MAX_PARALLEL_BRANCHES: usize = 16;

/// The packs a flow's steps name, looked up at each run.
pub trait FlowPacks: Sync {
    /// The pack a step calls `name`, or `None` when there is none.
    fn pack(&self, name: &str) -> Option<Pack>;
}

impl FlowPacks for HashMap<String, Pack> {
    fn pack(&self, name: &str) -> Option<Pack> {
        self.get(name).cloned()
    }
}

impl FlowPacks for BTreeMap<String, Pack> {
    fn pack(&self, name: &str) -> Option<Pack> {
        self.get(name).cloned()
    }
}

impl<F: Fn(&str) -> Option<Pack> + Sync> FlowPacks for F {
    fn pack(&self, name: &str) -> Option<Pack> {
        self(name)
    }
}

/// A checked flow definition, ready to run any number of times from any thread.
#[derive(Debug, Clone)]
pub struct Flow {
    name: String,
    description: String,
    timeout: Option<Duration>,
    nodes: Vec<Node>,
    output: Option<Template>,
    steps: Vec<StepInfo>,
}

/// Where a step sits in the flow's results and what it calls: results list steps in the
/// order the definition writes them, whatever order parallel branches finish in.
#[derive(Debug, Clone)]
struct StepInfo {
    id: String,
    pack: String,
    action: String,
}

#[derive(Debug, Clone)]
enum Node {
    Step(Box<Step>),
    Parallel(Vec<Vec<Node>>),
}

#[derive(Debug, Clone)]
struct Step {
    /// Position in [`Flow::steps`].
    index: usize,
    /// `None`: the step sends no input.
    input: Option<Template>,
    condition: Option<Condition>,
    timeout: Option<Duration>,
}

/// A step's input: literal JSON with `{"$from": POINTER}` (and an optional `"default"`)
/// wherever a value comes from the flow's input or an earlier step's output.
#[derive(Debug, Clone)]
enum Template {
    Literal(Value),
    From {
        pointer: Pointer,
        default: Option<Value>,
    },
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
}

/// A checked pointer into `{"input": ..., "steps": {ID: {"output": ...}}}`.
#[derive(Debug, Clone)]
struct Pointer {
    text: String,
    root: Root,
    /// The rest of the pointer, inside the input or the step's output.
    rest: String,
}

#[derive(Debug, Clone)]
enum Root {
    Input,
    Step(String),
}

/// A test on one value; every test given must hold.
#[derive(Debug, Clone)]
struct Condition {
    pointer: Pointer,
    equals: Option<Value>,
    not_equals: Option<Value>,
    exists: Option<bool>,
    greater_than: Option<f64>,
    less_than: Option<f64>,
}

/// What a successful run returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowOutput {
    /// The flow's `output` template filled in, or by default the output of the last
    /// top-level step that ran (`null` when none did).
    pub output: Value,
    /// Every step, in the order the definition writes them, with what it cost.
    pub steps: Vec<StepRecord>,
    /// The run's totals.
    pub usage: FlowUsage,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's `id`.
    pub id: String,
    /// The pack name the step gave.
    pub pack: String,
    /// The action it called.
    pub action: String,
    /// `ok` or `skipped` (its condition did not hold).
    pub status: StepStatus,
    /// The call's usage; `null` for a skipped step.
    pub usage: Option<Usage>,
    /// The call's log lines.
    pub logs: Vec<LogRecord>,
    /// The call's audit trail.
    pub audit: Vec<AuditEntry>,
}

/// Whether a step ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// The step ran and succeeded.
    Ok,
    /// Its condition did not hold, so it did not run.
    Skipped,
}

/// The totals of a run: sums over the steps that ran, but wall time (the run's own) and
/// peak memory (the largest step's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowUsage {
    /// Wall-clock time of the whole run, in microseconds.
    pub wall_time_us: u64,
    /// Fuel burnt by all steps.
    pub fuel_consumed: u64,
    /// The largest `peak_memory_bytes` of any step.
    pub peak_memory_bytes: u64,
    /// Input bytes of all steps.
    pub input_bytes: u64,
    /// Output bytes of all steps.
    pub output_bytes: u64,
    /// Host functions called by all steps.
    pub host_calls: u64,
    /// Time inside host functions' handlers, in microseconds.
    pub host_time_us: u64,
    /// Key-value operations of all steps.
    pub kv_ops: u64,
    /// HTTP requests of all steps.
    pub http_requests: u64,
    /// HTTP request body bytes sent by all steps.
    pub http_bytes_sent: u64,
    /// HTTP response body bytes received by all steps.
    pub http_bytes_received: u64,
    /// Steps that ran.
    pub steps_run: u64,
    /// Steps skipped by their condition.
    pub steps_skipped: u64,
    /// The `context` the run was given (every step's calls had it).
    pub context: Value,
}

impl FlowUsage {
    fn add(&mut self, usage: &Usage) {
        self.fuel_consumed = self.fuel_consumed.saturating_add(usage.fuel_consumed);
        self.peak_memory_bytes = self.peak_memory_bytes.max(usage.peak_memory_bytes);
        self.input_bytes = self.input_bytes.saturating_add(usage.input_bytes);
        self.output_bytes = self.output_bytes.saturating_add(usage.output_bytes);
        self.host_calls = self.host_calls.saturating_add(usage.host_calls);
        self.host_time_us = self.host_time_us.saturating_add(usage.host_time_us);
        self.kv_ops = self.kv_ops.saturating_add(usage.kv_ops);
        self.http_requests = self.http_requests.saturating_add(usage.http_requests);
        self.http_bytes_sent = self.http_bytes_sent.saturating_add(usage.http_bytes_sent);
        self.http_bytes_received = self
            .http_bytes_received
            .saturating_add(usage.http_bytes_received);
    }
}

impl FlowOutput {
    /// The whole result as JSON text, as bindings hand it to their host.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "null".to_string())
    }
}

// ---------------------------------------------------------------------------------------
// Reading a definition
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowDef {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
    steps: Vec<Value>,
    #[serde(default)]
    output: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepDef {
    id: String,
    pack: String,
    action: String,
    /// Absent is no input at all; `null` is a value.
    #[serde(default, deserialize_with = "present")]
    input: Option<Value>,
    #[serde(default, rename = "if")]
    condition: Option<Map<String, Value>>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// Reads a field that is present, `null` included, as `Some` (serde reads `null` as `None`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// A `timeout_ms` of a flow or step: at least one millisecond.
fn timeout(flow: &str, place: &str, millis: Option<u64>) -> Result<Option<Duration>> {
    match millis {
        Some(0) => Err(invalid(
            flow,
            format!("{place}: timeout_ms must be at least 1"),
        )),
        other => Ok(other.map(Duration::from_millis)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParallelDef {
    parallel: Vec<Vec<Value>>,
}

/// What a definition's reader knows while it walks the steps in order.
struct Reader<'a> {
    flow: &'a str,
    steps: Vec<StepInfo>,
    /// Every id seen so far, anywhere, to refuse duplicates.
    ids: BTreeSet<String>,
    /// Every id the definition writes, to tell a pointer to a step not run by then from a
    /// pointer to no step at all.
    written: BTreeSet<String>,
}

fn invalid(flow: &str, what: impl std::fmt::Display) -> Error {
    Error::invalid_options(format!("flow {flow:?}: {what}"))
}

impl Flow {
    /// Reads and checks a definition from JSON text.
    ///
    /// # Errors
    /// `invalid_options` when the text is not JSON or the definition is not a valid flow.
    pub fn from_json(text: &str) -> Result<Flow> {
        let value: Value = serde_json::from_str(text)
            .map_err(|err| Error::invalid_options(format!("flow: not JSON: {err}")))?;
        Flow::from_value(value)
    }

    /// Reads and checks a definition: `{"name", "description"?, "timeout_ms"?, "steps",
    /// "output"?}` (README, "Flows").
    ///
    /// # Errors
    /// `invalid_options`, naming what is wrong: unknown fields, a duplicate or malformed
    /// step id, a pointer to the input or a step not run by then, a malformed condition.
    pub fn from_value(value: Value) -> Result<Flow> {
        let def: FlowDef = serde_json::from_value(value)
            .map_err(|err| Error::invalid_options(format!("flow: {err}")))?;
        if def.name.is_empty() {
            return Err(Error::invalid_options("flow: the name is empty"));
        }
        let mut written = BTreeSet::new();
        written_ids(&def.steps, &mut written);
        let mut reader = Reader {
            flow: &def.name,
            steps: Vec::new(),
            ids: BTreeSet::new(),
            written,
        };
        let mut visible = BTreeSet::new();
        let nodes = reader.nodes(def.steps, &mut visible)?;
        if nodes.is_empty() {
            return Err(invalid(&def.name, "it has no steps"));
        }
        let output = match def.output {
            Some(value) => Some(reader.template(value, &visible, "output")?),
            None => None,
        };
        let steps = reader.steps;
        Ok(Flow {
            timeout: timeout(&def.name, "the flow", def.timeout_ms)?,
            description: def.description,
            name: def.name,
            nodes,
            output,
            steps,
        })
    }

    /// The flow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the flow does, from its definition (may be empty).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The pack names its steps give, each once, sorted.
    pub fn pack_names(&self) -> Vec<&str> {
        let names: BTreeSet<&str> = self.steps.iter().map(|step| step.pack.as_str()).collect();
        names.into_iter().collect()
    }

    /// Checks that `packs` has every pack a step names and that each has the step's action,
    /// so that a host binding a flow to its packs learns of a mistake before the first run.
    ///
    /// # Errors
    /// `invalid_options` for a missing pack, `action_not_found` for a missing action.
    pub fn check(&self, packs: &dyn FlowPacks) -> Result<()> {
        for step in &self.steps {
            let pack = self.find_pack(packs, step)?;
            if !pack.actions().contains(&step.action.as_str()) {
                return Err(Error::new(
                    ErrorKind::ActionNotFound,
                    format!("pack {:?} has no action {:?}", step.pack, step.action),
                )
                .in_flow_step(&self.name, &step.id));
            }
        }
        Ok(())
    }

    fn find_pack(&self, packs: &dyn FlowPacks, step: &StepInfo) -> Result<Pack> {
        packs.pack(&step.pack).ok_or_else(|| {
            Error::invalid_options(format!("no pack named {:?}", step.pack))
                .in_flow_step(&self.name, &step.id)
        })
    }
}

impl Reader<'_> {
    fn nodes(&mut self, values: Vec<Value>, visible: &mut BTreeSet<String>) -> Result<Vec<Node>> {
        let mut nodes = Vec::with_capacity(values.len());
        for value in values {
            let is_parallel = value
                .as_object()
                .is_some_and(|object| object.contains_key("parallel"));
            if is_parallel {
                let def: ParallelDef = serde_json::from_value(value)
                    .map_err(|err| invalid(self.flow, format!("parallel: {err}")))?;
                if !(2..=MAX_PARALLEL_BRANCHES).contains(&def.parallel.len()) {
                    return Err(invalid(
                        self.flow,
                        format!("parallel needs 2 to {MAX_PARALLEL_BRANCHES} branches"),
                    ));
                }
                let mut joined = visible.clone();
                let mut branches = Vec::with_capacity(def.parallel.len());
                for branch in def.parallel {
                    // A branch sees what ran before the fork and its own earlier steps, never
                    // a sibling's: those may not have run yet.
                    let mut seen = visible.clone();
                    let nodes = self.nodes(branch, &mut seen)?;
                    if nodes.is_empty() {
                        return Err(invalid(self.flow, "a parallel branch has no steps"));
                    }
                    joined.extend(seen);
                    branches.push(nodes);
                }
                *visible = joined;
                nodes.push(Node::Parallel(branches));
            } else {
                let def: StepDef = serde_json::from_value(value)
                    .map_err(|err| invalid(self.flow, format!("step: {err}")))?;
                let step = self.step(def, visible)?;
                visible.insert(self.steps[step.index].id.clone());
                nodes.push(Node::Step(Box::new(step)));
            }
        }
        Ok(nodes)
    }

    fn step(&mut self, def: StepDef, visible: &BTreeSet<String>) -> Result<Step> {
        let id = def.id;
        let well_formed = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !well_formed {
            return Err(invalid(
                self.flow,
                format!("step id {id:?}: use letters, digits, '_' and '-' only"),
            ));
        }
        if !self.ids.insert(id.clone()) {
            return Err(invalid(self.flow, format!("step id {id:?} is used twice")));
        }
        if self.steps.len() == MAX_FLOW_STEPS {
            return Err(invalid(
                self.flow,
                format!("more than {MAX_FLOW_STEPS} steps"),
            ));
        }
        let place = format!("step {id:?}");
        let input = match def.input {
            Some(value) => Some(self.template(value, visible, &place)?),
            None => None,
        };
        let step_timeout = timeout(self.flow, &place, def.timeout_ms)?;
        let condition = match def.condition {
            Some(map) => Some(self.condition(map, visible, &place)?),
            None => None,
        };
        let index = self.steps.len();
        self.steps.push(StepInfo {
            id,
            pack: def.pack,
            action: def.action,
        });
        Ok(Step {
            index,
            input,
            condition,
            timeout: step_timeout,
        })
    }

    fn template(&self, value: Value, visible: &BTreeSet<String>, place: &str) -> Result<Template> {
        Ok(match value {
            Value::Object(mut map) if map.contains_key("$from") => {
                let default = map.remove("default");
                let pointer = map.remove("$from");
                if !map.is_empty() {
                    return Err(invalid(
                        self.flow,
                        format!("{place}: \"$from\" allows only \"default\" beside it"),
                    ));
                }
                let Some(Value::String(text)) = pointer else {
                    return Err(invalid(
                        self.flow,
                        format!("{place}: \"$from\" must be a JSON Pointer string"),
                    ));
                };
                Template::From {
                    pointer: self.pointer(text, visible, place)?,
                    default,
                }
            }
            Value::Object(mut map) if map.contains_key("$literal") => {
                let literal = map.remove("$literal").unwrap_or_default();
                if !map.is_empty() {
                    return Err(invalid(
                        self.flow,
                        format!("{place}: \"$literal\" stands alone"),
                    ));
                }
                Template::Literal(literal)
            }
            Value::Object(map) => {
                let fields = map
                    .into_iter()
                    .map(|(key, value)| Ok((key, self.template(value, visible, place)?)))
                    .collect::<Result<Vec<_>>>()?;
                if fields
                    .iter()
                    .all(|(_, t)| matches!(t, Template::Literal(_)))
                {
                    Template::Literal(Value::Object(
                        fields
                            .into_iter()
                            .map(|(key, t)| (key, t.into_literal()))
                            .collect(),
                    ))
                } else {
                    Template::Object(fields)
                }
            }
            Value::Array(items) => {
                let items = items
                    .into_iter()
                    .map(|value| self.template(value, visible, place))
                    .collect::<Result<Vec<_>>>()?;
                if items.iter().all(|t| matches!(t, Template::Literal(_))) {
                    Template::Literal(Value::Array(
                        items.into_iter().map(Template::into_literal).collect(),
                    ))
                } else {
                    Template::Array(items)
                }
            }
            other => Template::Literal(other),
        })
    }

    fn pointer(&self, text: String, visible: &BTreeSet<String>, place: &str) -> Result<Pointer> {
        let bad = |why: &str| invalid(self.flow, format!("{place}: pointer {text:?} {why}"));
        let (root, rest) = if let Some(rest) = strip_token(&text, "input") {
            (Root::Input, rest.to_string())
        } else if let Some(after) = strip_token(&text, "steps") {
            let after = after
                .strip_prefix('/')
                .ok_or_else(|| bad("names no step"))?;
            let (id, tail) = after.split_once('/').unwrap_or((after, ""));
            if !visible.contains(id) {
                return Err(bad(if self.written.contains(id) {
                    "names a step that has not run by then (a later step or a sibling branch)"
                } else {
                    "names no step of this flow"
                }));
            }
            let tail = format!("/{tail}");
            let rest =
                strip_token(&tail, "output").ok_or_else(|| bad("must continue with /output"))?;
            (Root::Step(id.to_string()), rest.to_string())
        } else {
            return Err(bad("must start with /input or /steps/ID/output"));
        };
        Ok(Pointer { text, root, rest })
    }

    fn condition(
        &self,
        mut map: Map<String, Value>,
        visible: &BTreeSet<String>,
        place: &str,
    ) -> Result<Condition> {
        let place = format!("{place}, if");
        let pointer = match map.remove("pointer") {
            Some(Value::String(text)) => self.pointer(text, visible, &place)?,
            _ => {
                return Err(invalid(
                    self.flow,
                    format!("{place}: \"pointer\" (a JSON Pointer string) is required"),
                ))
            }
        };
        let number = |map: &mut Map<String, Value>, key: &str| -> Result<Option<f64>> {
            match map.remove(key) {
                None => Ok(None),
                Some(value) => value.as_f64().map(Some).ok_or_else(|| {
                    invalid(self.flow, format!("{place}: {key:?} must be a number"))
                }),
            }
        };
        let exists = match map.remove("exists") {
            None => None,
            Some(Value::Bool(wanted)) => Some(wanted),
            Some(_) => {
                return Err(invalid(
                    self.flow,
                    format!("{place}: \"exists\" must be true or false"),
                ))
            }
        };
        let condition = Condition {
            pointer,
            equals: map.remove("equals"),
            not_equals: map.remove("not_equals"),
            exists,
            greater_than: number(&mut map, "greater_than")?,
            less_than: number(&mut map, "less_than")?,
        };
        if let Some(key) = map.keys().next() {
            return Err(invalid(
                self.flow,
                format!(
                    "{place}: unknown test {key:?} (equals, not_equals, exists, greater_than, less_than)"
                ),
            ));
        }
        let tests = [
            condition.equals.is_some(),
            condition.not_equals.is_some(),
            condition.exists.is_some(),
            condition.greater_than.is_some(),
            condition.less_than.is_some(),
        ];
        if !tests.contains(&true) {
            return Err(invalid(self.flow, format!("{place}: no test given")));
        }
        Ok(condition)
    }
}

/// Collects the ids of the steps in `values`, parallel branches included, as written.
fn written_ids(values: &[Value], ids: &mut BTreeSet<String>) {
    for value in values {
        if let Some(Value::Array(branches)) = value.get("parallel") {
            for branch in branches {
                if let Value::Array(steps) = branch {
                    written_ids(steps, ids);
                }
            }
        } else if let Some(Value::String(id)) = value.get("id") {
            ids.insert(id.clone());
        }
    }
}

/// `text` without its first reference token when that token is `token`: what follows it,
/// empty or starting with `/`.
fn strip_token<'t>(text: &'t str, token: &str) -> Option<&'t str> {
    let rest = text.strip_prefix('/')?.strip_prefix(token)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

impl Template {
    fn into_literal(self) -> Value {
        match self {
            Template::Literal(value) => value,
            _ => Value::Null,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------

/// What the steps of one run share across branches.
struct Run<'a> {
    flow: &'a Flow,
    packs: &'a dyn FlowPacks,
    input: Value,
    context: Value,
    deadline: Option<Instant>,
    /// Cancelled when the host cancels the run or a step fails: every other branch stops.
    stop: CancelToken,
    outputs: Mutex<HashMap<String, Value>>,
    records: Mutex<Vec<Option<StepRecord>>>,
    /// The first failure, the one the run reports.
    failure: Mutex<Option<Error>>,
}

impl Flow {
    /// Runs the flow on `input` with `packs`. Every step's call gets `options.context`; the
    /// host's `options.cancel` cancels the whole run.
    ///
    /// # Errors
    /// The first failing step's error, with its code and report, its message naming the
    /// flow and the step: what the call failed with, `timeout` when the step's `timeout_ms`
    /// or the flow's deadline ended it, `cancelled` when the host did; `invalid_options`
    /// when a pack is missing or a pointer without `default` finds no value.
    pub fn run(
        &self,
        packs: &dyn FlowPacks,
        input: Value,
        options: &CallOptions,
    ) -> Result<FlowOutput> {
        let started = Instant::now();
        let run = Run {
            flow: self,
            packs,
            input,
            context: options.context.clone(),
            deadline: self.timeout.map(|timeout| started + timeout),
            stop: CancelToken::new(),
            outputs: Mutex::new(HashMap::new()),
            records: Mutex::new(vec![None; self.steps.len()]),
            failure: Mutex::new(None),
        };
        let stop = run.stop.clone();
        let _forward = options
            .cancel
            .as_ref()
            .map(|host| host.on_cancel(move || stop.cancel()));
        let last = run.nodes(&self.nodes);
        if let Some(err) = lock(&run.failure).take() {
            return Err(err);
        }
        // Stopped between steps by its host: no call was running to report it.
        if run.stop.is_cancelled() {
            return Err(CancelToken::error());
        }
        let output = match &self.output {
            Some(template) => run
                .fill(template)
                .map_err(|why| invalid(&self.name, format!("output: {why}")))?,
            None => last
                .and_then(|id| lock(&run.outputs).get(&id).cloned())
                .unwrap_or(Value::Null),
        };
        let mut usage = FlowUsage {
            context: run.context.clone(),
            ..FlowUsage::default()
        };
        let records: Vec<StepRecord> = lock(&run.records)
            .drain(..)
            .zip(&self.steps)
            .map(|(record, info)| record.unwrap_or_else(|| StepRecord::skipped(info)))
            .collect();
        for record in &records {
            match &record.usage {
                Some(step) => {
                    usage.add(step);
                    usage.steps_run += 1;
                }
                None => usage.steps_skipped += 1,
            }
        }
        usage.wall_time_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Ok(FlowOutput {
            output,
            steps: records,
            usage,
        })
    }

    /// [`Flow::run`] for bindings: the input as JSON text, the result as JSON text.
    ///
    /// # Errors
    /// `invalid_options` when `input` is not JSON; then as [`Flow::run`].
    pub fn run_json(
        &self,
        packs: &dyn FlowPacks,
        input: &str,
        options: &CallOptions,
    ) -> Result<String> {
        let input = if input.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(input)
                .map_err(|err| invalid(&self.name, format!("the input is not JSON: {err}")))?
        };
        self.run(packs, input, options)
            .map(|output| output.to_json())
    }
}

impl StepRecord {
    fn skipped(info: &StepInfo) -> Self {
        StepRecord {
            id: info.id.clone(),
            pack: info.pack.clone(),
            action: info.action.clone(),
            status: StepStatus::Skipped,
            usage: None,
            logs: Vec::new(),
            audit: Vec::new(),
        }
    }
}

impl Run<'_> {
    /// Runs `nodes` in order until one fails (or another branch did); the id of the last
    /// step among them that ran.
    fn nodes(&self, nodes: &[Node]) -> Option<String> {
        let mut last = None;
        for node in nodes {
            if self.stop.is_cancelled() {
                return last;
            }
            match node {
                Node::Step(step) => match self.step(step) {
                    Ok(true) => last = Some(self.flow.steps[step.index].id.clone()),
                    Ok(false) => {}
                    Err(err) => {
                        self.fail(err);
                        return last;
                    }
                },
                Node::Parallel(branches) => {
                    std::thread::scope(|scope| {
                        // The calling thread takes the first branch, and any no thread could
                        // be started for (the host is out of threads): slower, never wrong.
                        let mut here = Vec::new();
                        let mut others = Vec::new();
                        for (index, branch) in branches.iter().enumerate() {
                            let started = (index > 0)
                                .then(|| {
                                    std::thread::Builder::new()
                                        .name("packhost-flow".into())
                                        .spawn_scoped(scope, move || self.nodes(branch))
                                        .ok()
                                })
                                .flatten();
                            match started {
                                Some(handle) => others.push(handle),
                                None => here.push(branch),
                            }
                        }
                        for branch in here {
                            self.nodes(branch);
                        }
                        for handle in others {
                            if handle.join().is_err() {
                                self.fail(Error::new(
                                    ErrorKind::Internal,
                                    "packhost bug: a flow branch panicked",
                                ));
                            }
                        }
                    });
                }
            }
        }
        last
    }

    /// Keeps the first failure and stops every other branch. A step that failed only
    /// because the run was already stopping is not the cause.
    fn fail(&self, err: Error) {
        let mut failure = lock(&self.failure);
        if failure.is_none() {
            *failure = Some(err);
        }
        drop(failure);
        self.stop.cancel();
    }

    /// Runs one step; false when its condition kept it from running.
    fn step(&self, step: &Step) -> Result<bool> {
        let info = &self.flow.steps[step.index];
        let named = |err: Error| err.in_flow_step(&self.flow.name, &info.id);
        if let Some(condition) = &step.condition {
            if !self.holds(condition) {
                return Ok(false);
            }
        }
        let pack = self.flow.find_pack(self.packs, info)?;
        // Values cross as the action's manifest says, as through the runner's `/v1/execute`.
        let (input_encoding, output_encoding) = pack
            .manifest()
            .action(&info.action)
            .map_or((Encoding::Bytes, Encoding::Bytes), |spec| {
                (spec.input.encoding, spec.output.encoding)
            });
        let input = match &step.input {
            Some(template) => input_encoding.input_from_value(
                &self
                    .fill(template)
                    .map_err(|why| named(Error::invalid_options(why)))?,
            ),
            None => Vec::new(),
        };
        let now = Instant::now();
        let deadline = match (self.deadline, step.timeout) {
            (Some(flow), Some(own)) => Some(flow.min(now + own)),
            (flow, own) => flow.or(own.map(|own| now + own)),
        };
        if deadline.is_some_and(|deadline| deadline <= now) {
            return Err(named(self.flow.past_deadline(step, None)));
        }
        let cancel = CancelToken::new();
        let forward = cancel.clone();
        let _stop = self.stop.on_cancel(move || forward.cancel());
        let options = CallOptions {
            context: self.context.clone(),
            cancel: Some(cancel.clone()),
        };
        let fired = AtomicBool::new(false);
        let done = CancelToken::new();
        let result = std::thread::scope(|scope| {
            if let Some(deadline) = deadline {
                // Both engines stop a call when its token is cancelled, so a deadline shorter
                // than the pack's own timeout is one cancel, read back as `timeout` below.
                let (done, fired, cancel) = (&done, &fired, &cancel);
                let watchdog = std::thread::Builder::new()
                    .name("packhost-flow-deadline".into())
                    .spawn_scoped(scope, move || {
                        if !done.sleep(deadline.saturating_duration_since(Instant::now())) {
                            fired.store(true, Ordering::SeqCst);
                            cancel.cancel();
                        }
                    });
                if watchdog.is_err() {
                    return Err(Error::new(
                        ErrorKind::Internal,
                        "no thread could be started to keep the step's deadline",
                    ));
                }
            }
            let result = pack.call_with_options(&info.action, &input, &options);
            done.cancel();
            result
        });
        let output = match result {
            Ok(output) => output,
            Err(err) if fired.load(Ordering::SeqCst) && err.code() == "cancelled" => {
                return Err(named(self.flow.past_deadline(step, err.report().cloned())))
            }
            Err(err) => return Err(named(err)),
        };
        let value = output_value(&output.output, output_encoding);
        lock(&self.outputs).insert(info.id.clone(), value);
        lock(&self.records)[step.index] = Some(StepRecord {
            id: info.id.clone(),
            pack: info.pack.clone(),
            action: info.action.clone(),
            status: StepStatus::Ok,
            usage: Some(output.usage),
            logs: output.logs,
            audit: output.audit,
        });
        Ok(true)
    }

    fn holds(&self, condition: &Condition) -> bool {
        let value = self.lookup(&condition.pointer);
        let value = value.as_ref();
        let number = value.and_then(Value::as_f64);
        let same = |want: &Value| value.is_some_and(|value| same_value(value, want));
        condition.equals.as_ref().is_none_or(same)
            && condition.not_equals.as_ref().is_none_or(|want| !same(want))
            && condition.exists.is_none_or(|want| value.is_some() == want)
            && condition
                .greater_than
                .is_none_or(|bound| number.is_some_and(|n| n > bound))
            && condition
                .less_than
                .is_none_or(|bound| number.is_some_and(|n| n < bound))
    }

    /// The value a pointer names now; `None` when the input or output has no such value or
    /// the step did not run.
    fn lookup(&self, pointer: &Pointer) -> Option<Value> {
        match &pointer.root {
            Root::Input => self.input.pointer(&pointer.rest).cloned(),
            Root::Step(id) => lock(&self.outputs)
                .get(id)
                .and_then(|output| output.pointer(&pointer.rest))
                .cloned(),
        }
    }

    /// `template` filled in from the input and the outputs so far; the reason when a
    /// pointer without a default finds no value.
    fn fill(&self, template: &Template) -> std::result::Result<Value, String> {
        Ok(match template {
            Template::Literal(value) => value.clone(),
            Template::From { pointer, default } => match self.lookup(pointer) {
                Some(value) => value,
                None => default.clone().ok_or_else(|| {
                    format!(
                        "{:?} names no value (give \"default\" when it may be absent)",
                        pointer.text
                    )
                })?,
            },
            Template::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(key, t)| Ok((key.clone(), self.fill(t)?)))
                    .collect::<std::result::Result<Map<_, _>, String>>()?,
            ),
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| self.fill(t))
                    .collect::<std::result::Result<Vec<_>, String>>()?,
            ),
        })
    }
}

/// Whether two JSON values are equal, numbers by value (`1` equals `1.0`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// A step's output as a value: parsed for a JSON action, and for a bytes action when it
/// parses (a pack without a manifest says bytes of everything); otherwise its text (bytes
/// that are not UTF-8 with U+FFFD in their place).
fn output_value(output: &[u8], encoding: Encoding) -> Value {
    if matches!(encoding, Encoding::Json | Encoding::Bytes) {
        if let Ok(value) = serde_json::from_slice::<Value>(output) {
            return value;
        }
    }
    Value::String(String::from_utf8_lossy(output).into_owned())
}

impl Flow {
    /// The `timeout` of a step its deadline ended, with the cancelled call's report.
    fn past_deadline(&self, step: &Step, report: Option<crate::usage::CallReport>) -> Error {
        let why = match (self.timeout, step.timeout) {
            (Some(flow), Some(own)) => format!(
                "the call passed its deadline (step timeout_ms {}, flow timeout_ms {})",
                own.as_millis(),
                flow.as_millis()
            ),
            (Some(flow), None) => format!(
                "the call passed the flow's deadline (timeout_ms {})",
                flow.as_millis()
            ),
            (None, own) => format!(
                "the call passed the step's timeout_ms {}",
                own.unwrap_or_default().as_millis()
            ),
        };
        let err = Error::new(ErrorKind::Timeout, why);
        match report {
            Some(report) => err.with_report(report),
            None => err,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
