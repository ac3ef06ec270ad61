//! The extism engine's `var_get` and `var_set`, shadowing extism's own so that vars live in
//! packhost's `Vars`: one cap (`limits.max_var_bytes`) counted the same way as on the native
//! engine, and every byte held counted by the instance's memory meter. Like extism's, they
//! take (free) the key and value blocks the pack hands them.

use std::sync::{Arc, Mutex, PoisonError};

use extism::{CurrentPlugin, Function, UserData, Val, PTR};

use super::memory::MemoryMeter;
use super::{kernel, LinkGate};
use crate::engine::vars::{MemoryAccount, Vars};
use crate::error::Error;
use crate::module::EXTISM_ENV;

/// One instance's vars and the meter their bytes count against.
pub(crate) struct InstanceVars {
    vars: Vars,
    meter: Arc<MemoryMeter>,
}

impl InstanceVars {
    pub(crate) fn new(max_bytes: u64, meter: Arc<MemoryMeter>) -> Self {
        InstanceVars {
            vars: Vars::new(max_bytes),
            meter,
        }
    }
}

/// The meter as the account `Vars` moves bytes in.
struct MeterAccount<'a>(&'a MemoryMeter);

impl MemoryAccount for MeterAccount<'_> {
    fn swap(&mut self, release: u64, claim: u64) -> bool {
        self.0.release_held(release);
        if self.0.hold(claim) {
            return true;
        }
        // Put back what was released: it was held before, so it fits.
        self.0.hold(release);
        false
    }

    fn limit(&self) -> u64 {
        self.0.limit()
    }
}

/// Drops the vars of a plugin being replaced, giving their bytes back to the meter.
pub(crate) fn clear(vars: &UserData<InstanceVars>) {
    if let Ok(shared) = vars.get() {
        let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes = state.vars.clear();
        state.meter.release_held(bytes);
    }
}

/// `var_get` and `var_set`, bound to one instance's vars.
pub(crate) fn functions(
    vars: &UserData<InstanceVars>,
    meter: &Arc<MemoryMeter>,
    gate: &LinkGate,
) -> Vec<Function> {
    let (for_get, for_set) = (meter.clone(), meter.clone());
    vec![
        gate.function(
            "var_get",
            [PTR],
            [PTR],
            vars.clone(),
            move |plugin, inputs, outputs, vars| {
                let key = read_text(plugin, &for_get, &inputs[0], "var key", true)?;
                let shared = vars.get()?;
                let value = lock(&shared).vars.get(&key).map(<[u8]>::to_vec);
                outputs[0] = match value {
                    Some(value) => kernel::new_block(plugin, &for_get, &value)?,
                    None => Val::I64(0),
                };
                Ok(())
            },
        )
        .with_namespace(EXTISM_ENV),
        gate.function(
            "var_set",
            [PTR, PTR],
            [],
            vars.clone(),
            move |plugin, inputs, _, vars| {
                // Both blocks are read before either is freed: they may be the same one.
                let key = read_text(plugin, &for_set, &inputs[0], "var key", false)?;
                let value = match inputs[1].i64() {
                    Some(0) | None => None,
                    Some(_) => Some(kernel::read_block(
                        plugin,
                        &for_set,
                        &inputs[1],
                        "var value",
                        true,
                    )?),
                };
                if inputs[0].i64() != inputs[1].i64() {
                    free(plugin, &inputs[0]);
                }
                let shared = vars.get()?;
                let mut state = lock(&shared);
                let InstanceVars { vars, meter } = &mut *state;
                vars.set(key, value, &mut MeterAccount(meter))?;
                Ok(())
            },
        )
        .with_namespace(EXTISM_ENV),
    ]
}

fn lock(shared: &Mutex<InstanceVars>) -> std::sync::MutexGuard<'_, InstanceVars> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read_text(
    plugin: &mut CurrentPlugin,
    meter: &MemoryMeter,
    value: &Val,
    what: &str,
    free: bool,
) -> Result<String, Error> {
    kernel::read_block(plugin, meter, value, what, free)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// Frees the block a handle value names (one already read).
fn free(plugin: &mut CurrentPlugin, value: &Val) {
    if let Some(handle) = plugin.memory_from_val(value) {
        // Freeing a block that was just read cannot fail.
        let _ = plugin.memory_free(handle);
    }
}
