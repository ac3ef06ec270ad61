//! The `NativeFlow` class: a flow definition the core read and checked against the packs it
//! names, and its runs on the libuv thread pool.

use std::collections::BTreeMap;
use std::sync::Arc;

use napi::bindgen_prelude::AsyncTask;
use napi::{Either, Env, Task};
use napi_derive::napi;
use packhost::{Error, ErrorKind, Flow, Pack};

use crate::cancel::CancelToken;
use crate::outcome::{guarded, NativeError};
use crate::pack::{call_options, NativePack};

/// A checked flow bound to its packs. Both are shared with the runs, so the JS object may be
/// collected while one runs.
#[napi]
pub struct NativeFlow {
    flow: Arc<Flow>,
    packs: Arc<BTreeMap<String, Pack>>,
}

fn created(
    definition_json: &str,
    names: Vec<String>,
    packs: &[&NativePack],
) -> packhost::Result<NativeFlow> {
    guarded("flow", || {
        let flow = Flow::from_json(definition_json)?;
        if names.len() != packs.len() {
            return Err(Error::new(
                ErrorKind::InvalidOptions,
                format!(
                    "flow {:?}: {} pack names for {} packs",
                    flow.name(),
                    names.len(),
                    packs.len()
                ),
            ));
        }
        let bound: BTreeMap<String, Pack> = names
            .into_iter()
            .zip(packs.iter().map(|native| native.pack().clone()))
            .collect();
        flow.check(&bound)?;
        Ok(NativeFlow {
            flow: Arc::new(flow),
            packs: Arc::new(bound),
        })
    })
}

/// Reads a flow's definition (JSON text) and checks it against its packs, `names[i]` being
/// the name its steps give `packs[i]`: every pack a step names is there and has the step's
/// action. A failure comes back as data, as a load's does.
#[napi]
pub fn create_flow(
    definition_json: String,
    names: Vec<String>,
    packs: Vec<&NativePack>,
) -> Either<NativeFlow, NativeError> {
    match created(&definition_json, names, &packs) {
        Ok(flow) => Either::A(flow),
        Err(err) => Either::B(NativeError::from(&err)),
    }
}

#[napi]
impl NativeFlow {
    /// The flow's name, from its definition.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.flow.name().to_string()
    }

    /// Runs the flow on the libuv thread pool on `input_json` (JSON text, empty for null);
    /// the promise resolves with the result as JSON text (`{"output", "steps", "usage"}`) or
    /// the failure. `options_json` is the call options every step gets, as JSON text, absent
    /// for the defaults. Cancelling `cancel` ends the run with `cancelled`.
    #[napi(ts_return_type = "Promise<string | NativeError>")]
    pub fn run(
        &self,
        input_json: String,
        options_json: Option<String>,
        cancel: Option<&CancelToken>,
    ) -> AsyncTask<FlowRunTask> {
        AsyncTask::new(FlowRunTask {
            flow: Arc::clone(&self.flow),
            packs: Arc::clone(&self.packs),
            input_json,
            options_json,
            cancel: cancel.map(|token| token.token().clone()),
        })
    }
}

/// A flow's run on the thread pool.
pub struct FlowRunTask {
    flow: Arc<Flow>,
    packs: Arc<BTreeMap<String, Pack>>,
    input_json: String,
    options_json: Option<String>,
    /// The token the wrapper cancels when the run's `AbortSignal` aborts.
    cancel: Option<packhost::CancelToken>,
}

impl Task for FlowRunTask {
    type Output = packhost::Result<String>;
    type JsValue = Either<String, NativeError>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let cancel = self.cancel.take();
        Ok(guarded("flow", || {
            let mut options = call_options(self.options_json.as_deref())?;
            // The token is not data, so it never crosses as JSON: it joins the options here.
            options.cancel = cancel;
            self.flow.run_json(&*self.packs, &self.input_json, &options)
        }))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(match output {
            Ok(json) => Either::A(json),
            Err(err) => Either::B(NativeError::from(&err)),
        })
    }
}
