//! `NativeFlow`: a core [`packhost::Flow`] bound to the packs its steps name. The definition,
//! the input, the call options and the result cross as JSON text (`Flow::run_json`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use packhost::{CallOptions, Flow, Pack};

use crate::error::{catch_panic, PackFailure};
use crate::pack::{NativeCancelToken, NativePack};

/// A checked flow and the packs its steps call.
#[derive(uniffi::Object)]
pub struct NativeFlow {
    flow: Flow,
    /// Each pack name the definition gives, to the pack it calls.
    packs: BTreeMap<String, Pack>,
}

#[uniffi::export]
impl NativeFlow {
    /// Reads a definition from JSON text and checks it against `packs`: every pack a step
    /// names is there and has the step's action.
    #[uniffi::constructor]
    pub fn new(
        definition_json: String,
        packs: HashMap<String, Arc<NativePack>>,
    ) -> Result<Arc<Self>, PackFailure> {
        let packs: BTreeMap<String, Pack> = packs
            .into_iter()
            .map(|(name, pack)| (name, pack.pack().clone()))
            .collect();
        let flow = catch_panic(|| {
            let flow = Flow::from_json(&definition_json)?;
            flow.check(&packs)?;
            Ok(flow)
        })?;
        Ok(Arc::new(NativeFlow { flow, packs }))
    }

    /// The flow's name, from its definition.
    pub fn name(&self) -> String {
        self.flow.name().to_string()
    }

    /// Runs the flow on `input_json` (empty means null), with call options (the `context`
    /// every step's call gets) as JSON text when given, cancelled through `cancel` when
    /// given; the result (`output`, `steps`, `usage`) as JSON text.
    pub fn run(
        &self,
        input_json: String,
        call_options_json: Option<String>,
        cancel: Option<Arc<NativeCancelToken>>,
    ) -> Result<String, PackFailure> {
        catch_panic(|| {
            let mut options = match call_options_json {
                Some(json) => CallOptions::from_json(&json)?,
                None => CallOptions::default(),
            };
            options.cancel = cancel.map(|cancel| cancel.token.clone());
            self.flow.run_json(&self.packs, &input_json, &options)
        })
    }
}
