//! The JVM's fast call path: plain C functions with primitive arguments, which JNA's direct
//! mapping calls without building a structure per argument. uniffi's generated Kotlin
//! allocates several JNA structures (and their native memory) per call, which cost about
//! 90 us on this VM against a call of 1 us; this path makes a call one native crossing plus
//! one to free its outcome. Logs and the audit trail come back as JSON text, only when a call
//! has them; a failure is read through uniffi (`NativeOutcome::failure`).
//!
//! The handles are uniffi's own (a leaked `Arc`, as uniffi documents its Rust object
//! handles): the pack is a `NativePack` handle the Kotlin layer cloned
//! (`uniffiCloneHandle`) and gives back with `packhost_jvm_pack_release`; a call's outcome
//! is a `NativeOutcome` handle, freed with `packhost_jvm_outcome_free` or, when the Kotlin
//! layer wraps it to read the rest, by uniffi. `FastPack.kt` keeps each alive while used.

use std::sync::Arc;

use packhost::{CallOptions, Error, ErrorKind};

use crate::error::{caught, PackFailure};
use crate::pack::NativePack;

/// How many numbers `packhost_jvm_call` writes, and where (FastPack.kt reads the same).
pub const NUMBERS: usize = 20;
const OK: usize = 0;
const OUTPUT_ADDRESS: usize = 1;
const OUTPUT_LENGTH: usize = 2;
/// Three JSON texts, each an address and a length (0 and 0 when there is none): the context
/// as the core recorded it, the log records and the audit entries.
const CONTEXT: usize = 3;
const LOGS: usize = 5;
const AUDIT: usize = 7;
/// The usage's counters follow (`Usage::counters`, in `CallUsage`'s order).
const USAGE: usize = 9;
const _: () = assert!(USAGE + packhost::Usage::COUNTERS == NUMBERS);

/// One fast call's result, held for the JVM until it has read what it needs.
#[derive(uniffi::Object)]
pub struct NativeOutcome {
    output: Vec<u8>,
    /// The context, logs and audit entries as JSON text, each when the call has them.
    texts: [Option<String>; 3],
    /// The usage's counters (`Usage::counters`), zeros for a failure.
    counters: [u64; packhost::Usage::COUNTERS],
    error: Option<Error>,
}

/// `value` as JSON text, or nothing when `present` is false.
fn json_if(present: bool, value: &impl serde::Serialize) -> Option<String> {
    present.then(|| serde_json::to_string(value).unwrap_or_default())
}

#[uniffi::export]
impl NativeOutcome {
    /// The failure of a failed call, thrown as `PackFailure` (nothing for a success).
    pub fn failure(&self) -> Result<(), PackFailure> {
        match &self.error {
            Some(error) => Err(PackFailure::from(error.clone())),
            None => Ok(()),
        }
    }
}

/// # Safety
/// `data` points at `length` readable bytes, or `length` is 0.
pub(crate) unsafe fn bytes<'a>(data: *const u8, length: i32) -> &'a [u8] {
    if data.is_null() || length <= 0 {
        return &[];
    }
    // SAFETY: JNA passes the array's memory for the duration of the call.
    unsafe { std::slice::from_raw_parts(data, length as usize) }
}

/// Runs `action` on `input` with call options as JSON text (none when `options_length` is
/// 0) and writes [`NUMBERS`] numbers: success, the output's address and length, the address
/// and length of the context, logs and audit entries as JSON text, then the usage.
/// Returns the outcome's handle, which the caller frees with `packhost_jvm_outcome_free`
/// after reading the output; or 0, writing nothing, when `numbers_length` is not
/// [`NUMBERS`] (a JAR and a library from different builds).
///
/// # Safety
/// `pack` is a live `NativePack` handle; each pointer points at as many bytes as its length
/// says; `numbers` at `numbers_length` writable `i64`s.
#[no_mangle]
pub unsafe extern "C" fn packhost_jvm_call(
    pack: u64,
    action: *const u8,
    action_length: i32,
    input: *const u8,
    input_length: i32,
    options: *const u8,
    options_length: i32,
    numbers: *mut i64,
    numbers_length: i32,
) -> u64 {
    if usize::try_from(numbers_length) != Ok(NUMBERS) {
        return 0;
    }
    // SAFETY: as the function's contract says; the Kotlin layer holds the handle alive.
    let (pack, action, input, options) = unsafe {
        (
            (*(pack as *const NativePack)).pack(),
            bytes(action, action_length),
            bytes(input, input_length),
            bytes(options, options_length),
        )
    };
    let result = caught(|| {
        let action = std::str::from_utf8(action)
            .map_err(|_| Error::new(ErrorKind::InvalidOptions, "the action is not UTF-8"))?;
        let options = if options.is_empty() {
            CallOptions::default()
        } else {
            let text = std::str::from_utf8(options).map_err(|_| {
                Error::new(ErrorKind::InvalidOptions, "the call options are not UTF-8")
            })?;
            CallOptions::from_json(text)?
        };
        let (output, report) = pack.call_reading(action, input, &options, <[u8]>::to_vec)?;
        // The JVM reads the output into one array, whose length is an Int.
        if i32::try_from(output.len()).is_err() {
            return Err(Error::new(
                ErrorKind::OutputTooLarge,
                format!(
                    "the output of {} bytes is more than the JVM holds in one array",
                    output.len()
                ),
            ));
        }
        Ok((output, report))
    });
    let outcome = match result {
        Ok((output, report)) => NativeOutcome {
            output,
            texts: [
                json_if(!report.usage.context.is_null(), &report.usage.context),
                json_if(!report.logs.is_empty(), &report.logs),
                json_if(!report.audit.is_empty(), &report.audit),
            ],
            counters: report.usage.counters(),
            error: None,
        },
        Err(error) => NativeOutcome {
            output: Vec::new(),
            texts: [None, None, None],
            counters: [0; packhost::Usage::COUNTERS],
            error: Some(error),
        },
    };
    let mut written = [0i64; NUMBERS];
    written[OK] = i64::from(outcome.error.is_none());
    written[OUTPUT_ADDRESS] = outcome.output.as_ptr() as i64;
    written[OUTPUT_LENGTH] = outcome.output.len() as i64;
    for (slot, text) in [CONTEXT, LOGS, AUDIT].into_iter().zip(&outcome.texts) {
        if let Some(text) = text {
            written[slot] = text.as_ptr() as i64;
            written[slot + 1] = text.len() as i64;
        }
    }
    for (slot, counter) in written[USAGE..].iter_mut().zip(outcome.counters) {
        *slot = counter as i64;
    }
    // SAFETY: `numbers` points at NUMBERS writable i64s.
    unsafe { std::ptr::copy_nonoverlapping(written.as_ptr(), numbers, NUMBERS) };
    // The address is the outcome's uniffi handle (its leaked Arc).
    Arc::into_raw(Arc::new(outcome)) as u64
}

/// Frees a call's outcome.
///
/// # Safety
/// `outcome` came from `packhost_jvm_call` and is freed once (here or by uniffi).
#[no_mangle]
pub unsafe extern "C" fn packhost_jvm_outcome_free(outcome: u64) {
    // SAFETY: as the function's contract says.
    drop(unsafe { Arc::from_raw(outcome as *const NativeOutcome) });
}

/// Gives back a `NativePack` handle the Kotlin layer cloned for the fast path.
///
/// # Safety
/// `pack` is a handle from `uniffiCloneHandle`, given back once, with no call using it.
#[no_mangle]
pub unsafe extern "C" fn packhost_jvm_pack_release(pack: u64) {
    // SAFETY: as the function's contract says.
    drop(unsafe { Arc::from_raw(pack as *const NativePack) });
}
