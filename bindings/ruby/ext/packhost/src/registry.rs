//! `Packhost.push` and `Packhost.pull`'s native halves: packhost-oci's, run with the GVL
//! released (they wait on the network), what they did handed back as JSON text.

use magnus::{function, Error, RModule, Ruby};

use crate::errors::{guard, panic_error, raise};
use crate::gvl::{without_gvl, Interrupts};

pub(crate) fn init(module: RModule) -> Result<(), Error> {
    module.define_module_function("__push_json", function!(push_json, 3))?;
    module.define_module_function("__pull_json", function!(pull_json, 1))?;
    Ok(())
}

/// Publishes the pack at `path` to `reference`, with `signature` (else `PATH.sig`).
fn push_json(
    ruby: &Ruby,
    path: String,
    reference: String,
    signature: Option<String>,
) -> Result<String, Error> {
    released(ruby, move || {
        packhost_oci::push(
            path.as_ref(),
            &reference,
            signature.as_deref().map(std::path::Path::new),
        )
        .map(|pushed| pushed.to_json())
    })
}

/// Pulls `reference` into the shared store and pins it.
fn pull_json(ruby: &Ruby, reference: String) -> Result<String, Error> {
    released(ruby, move || {
        packhost_oci::pull_to_default_store(&reference).map(|pulled| pulled.to_json())
    })
}

fn released(ruby: &Ruby, work: impl FnOnce() -> packhost::Result<String>) -> Result<String, Error> {
    guard(ruby, |ruby| {
        let mut interrupts = Interrupts::default();
        let done = without_gvl(&mut interrupts, work);
        interrupts.deliver()?;
        done.unwrap_or_else(|payload| Err(panic_error(payload)))
            .map_err(|err| raise(ruby, &err))
    })
}
