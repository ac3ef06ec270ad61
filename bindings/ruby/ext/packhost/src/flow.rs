//! `Packhost::Flow`'s native methods: read and check a flow definition against loaded packs,
//! and run it with the GVL released, its result handed back as JSON text.
//!
//! Everything a flow does (templates, conditions, parallel branches, deadlines, totals) is
//! the core's `packhost::Flow`; the idiomatic API (`Flow.new` from a Hash, `#run` returning
//! a parsed Hash) is Ruby code in `lib/packhost/flow.rb` over these.

use std::collections::BTreeMap;

use magnus::{function, method, prelude::*, value::Opaque, Error, RArray, RModule, Ruby};
use packhost::{CallOptions, Flow, Pack};

use crate::cancel::RbCancelToken;
use crate::errors::{guard, panic_error, raise};
use crate::gvl::{without_gvl, Interrupts};
use crate::host_fn::scope_flow;
use crate::pack::{call_error, RbPack};

/// A checked flow and the packs it runs, owned by a Ruby object. Freed when Ruby collects
/// the object.
#[magnus::wrap(class = "Packhost::Flow", free_immediately, size)]
struct RbFlow {
    flow: Flow,
    /// The lender number of each pack (`host_fn`), in the order the packs were given: each
    /// run's Array of adapter Arrays has the same order.
    lenders: Vec<u64>,
}

pub(crate) fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("Flow", ruby.class_object())?;
    // Flows come only from `Flow.new` (Ruby, over `__new`); an object made by `allocate`
    // would hold none.
    class.undef_default_alloc_func();
    class.define_singleton_method("__new", function!(RbFlow::new, 2))?;
    class.define_method("__run", method!(RbFlow::run, 5))?;
    class.define_method("name", method!(RbFlow::name, 0))?;
    class.define_method("description", method!(RbFlow::description, 0))?;
    class.define_method("pack_names", method!(RbFlow::pack_names, 0))?;
    Ok(())
}

impl RbFlow {
    /// Reads the definition (JSON text) and checks it against `packs`, an Array of
    /// `[name, Packhost::Pack]` pairs: every pack a step names is there and has the step's
    /// action. Takes each pack's current version.
    fn new(ruby: &Ruby, definition_json: String, packs: RArray) -> Result<Self, Error> {
        guard(ruby, |ruby| {
            let (named, lenders) = current_packs(packs)?;
            let flow = Flow::from_json(&definition_json).map_err(|err| raise(ruby, &err))?;
            flow.check(&named).map_err(|err| raise(ruby, &err))?;
            Ok(RbFlow { flow, lenders })
        })
    }

    /// Runs the flow on `input` (JSON text; empty for null) and returns the result as JSON
    /// text (`{"output", "steps", "usage"}`). `call_options` is the core's `CallOptions` as
    /// JSON text (nil for none); `cancel` is a `Packhost::CancelToken` that stops the run
    /// when another thread cancels it (nil for none); `adapters` is an Array holding each
    /// pack's frozen Array of host-function adapters (or nil), in the order the packs were
    /// given to `__new` (nil when no pack lends any); `packs` the same pairs `__new` was
    /// given, whose current versions this run calls.
    fn run(
        ruby: &Ruby,
        rb_self: &Self,
        input: String,
        call_options: Option<String>,
        cancel: Option<&RbCancelToken>,
        adapters: Option<RArray>,
        packs: RArray,
    ) -> Result<String, Error> {
        guard(ruby, |ruby| {
            let (packs, _) = current_packs(packs)?;
            let mut options = match call_options {
                Some(json) => CallOptions::from_json(&json).map_err(|err| raise(ruby, &err))?,
                None => CallOptions::default(),
            };
            options.cancel = cancel.map(RbCancelToken::token);
            let (flow, packs) = (&rb_self.flow, &packs);
            // The Array stays a live argument of this method for the whole run, so the GC
            // keeps it where it is while handlers read it.
            let adapters = adapters.map(Opaque::from);
            // The whole run without the GVL: its steps run one after another (or in
            // parallel branches) and none is expected to be short.
            let mut interrupts = Interrupts::default();
            let (outcome, failure) = scope_flow(adapters, rb_self.lenders.clone(), || {
                without_gvl(&mut interrupts, || flow.run_json(packs, &input, &options))
            });
            interrupts.deliver()?;
            outcome
                .and_then(|released| released)
                .unwrap_or_else(|payload| Err(panic_error(payload)))
                .map_err(|err| call_error(ruby, &err, failure))
        })
    }

    /// The flow's name, from its definition.
    fn name(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        guard(ruby, |_| Ok(rb_self.flow.name().to_string()))
    }

    /// What the flow does, from its definition (may be empty).
    fn description(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        guard(ruby, |_| Ok(rb_self.flow.description().to_string()))
    }

    /// The pack names its steps give, each once, sorted.
    fn pack_names(ruby: &Ruby, rb_self: &Self) -> Result<Vec<String>, Error> {
        guard(ruby, |_| {
            Ok(rb_self
                .flow
                .pack_names()
                .into_iter()
                .map(str::to_string)
                .collect())
        })
    }
}

/// Each pack of an Array of `[name, Packhost::Pack]` pairs at its current version, by name,
/// and the lender number of each, in the Array's order.
fn current_packs(packs: RArray) -> Result<(BTreeMap<String, Pack>, Vec<u64>), Error> {
    let mut named = BTreeMap::new();
    let mut lenders = Vec::with_capacity(packs.len());
    for index in 0..packs.len() {
        let (name, pack): (String, &RbPack) = packs.entry(index as isize)?;
        lenders.push(pack.lender());
        named.insert(name, pack.current());
    }
    Ok((named, lenders))
}
