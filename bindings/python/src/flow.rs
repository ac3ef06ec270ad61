//! `NativeFlow`: a core [`packhost::Flow`] bound to the packs its steps name, run with the
//! GIL released as loads are (see `load_detached` in `pack.rs`), so Python threads run on
//! while a flow's steps do.
//!
//! The definition and the call options arrive as JSON text and the result leaves as JSON
//! text (`Flow::run_json`); this file never looks inside them. The public `packhost.Flow`
//! (Python) wraps this class.

use std::collections::BTreeMap;

use packhost::{CallOptions, Flow, Pack};
use pyo3::prelude::*;

use crate::cancel::CancelToken;
use crate::errors::{catch_panic, to_py_err};
use crate::pack::NativePack;

/// A checked flow and the packs its steps call. Frozen: runs share it across threads
/// without locking.
#[pyclass(module = "packhost._native", frozen)]
pub struct NativeFlow {
    flow: Flow,
    /// Each pack name the definition gives, to the pack it calls: the versions the packs
    /// had when the flow was made.
    packs: BTreeMap<String, Pack>,
}

#[pymethods]
impl NativeFlow {
    /// Reads a definition from JSON text (`Flow::from_json`) and checks it against `packs`,
    /// `(name, pack)` pairs made by the Python half: every pack a step names is there and
    /// has the step's action.
    #[staticmethod]
    fn from_json(
        py: Python<'_>,
        definition_json: &str,
        packs: Vec<(String, Py<NativePack>)>,
    ) -> PyResult<Self> {
        let packs: BTreeMap<String, Pack> = packs
            .into_iter()
            .map(|(name, pack)| (name, pack.get().pack().clone()))
            .collect();
        catch_panic(|| {
            let flow = Flow::from_json(definition_json)?;
            flow.check(&packs)?;
            Ok(flow)
        })
        .map(|flow| NativeFlow { flow, packs })
        .map_err(|err| to_py_err(py, &err))
    }

    /// The flow's name, from its definition.
    #[getter]
    fn name(&self) -> &str {
        self.flow.name()
    }

    /// Runs the flow on `input_json` (JSON text; empty means null) without the GIL, with
    /// call options (the `context` every step's call gets) as JSON text when given,
    /// cancelled through `cancel` when given; the result (`output`, `steps`, `usage`) as
    /// JSON text. A failing step raises its call's error class, its message naming the
    /// flow and the step.
    #[pyo3(signature = (input_json, call_options_json=None, cancel=None))]
    fn run(
        &self,
        py: Python<'_>,
        input_json: &str,
        call_options_json: Option<&str>,
        cancel: Option<&CancelToken>,
    ) -> PyResult<String> {
        let mut call_options = match call_options_json {
            Some(json) => CallOptions::from_json(json).map_err(|err| to_py_err(py, &err))?,
            None => CallOptions::default(),
        };
        call_options.cancel = cancel.map(|cancel| cancel.token().clone());
        py.detach(|| catch_panic(|| self.flow.run_json(&self.packs, input_json, &call_options)))
            .map_err(|err| to_py_err(py, &err))
    }

    fn __repr__(&self) -> String {
        format!(
            "NativeFlow({:?}, packs={:?})",
            self.flow.name(),
            self.flow.pack_names()
        )
    }
}
