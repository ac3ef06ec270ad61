//! The JVM's fast call path: plain C functions with primitive arguments, which JNA's direct
//! mapping calls without building a structure per argument. uniffi's generated Kotlin
//! allocates several JNA structures (and their native memory) per call, which cost about
//! 90 us on this VM against a call of 1 us; this path makes a call one native crossing plus
//! one to free its outcome. Logs, the audit trail and failures are read through uniffi
//! (`outcome_report`, `outcome_failure`) only when a call has them.
//!
//! Handles are raw pointers as `u64`: a pack handle owns a clone of the core pack until
//! `packhost_jvm_pack_release`; an outcome handle owns one call's result until
//! `packhost_jvm_outcome_free`. The Kotlin layer (`FastPack.kt`) keeps each handle alive
//! while it is used and releases it once.

use packhost::{CallOptions, CallReport, Error, ErrorKind, Pack};

use crate::error::{caught, PackFailure};

/// How many numbers `packhost_jvm_call` writes, and where.
pub const NUMBERS: usize = 16;
const OK: usize = 0;
const OUTPUT_ADDRESS: usize = 1;
const OUTPUT_LENGTH: usize = 2;
const HAS_LOGS: usize = 3;
const HAS_AUDIT: usize = 4;
/// The usage's counters follow (`Usage::counters`, in `CallUsage`'s order).
const USAGE: usize = 5;
const _: () = assert!(USAGE + packhost::Usage::COUNTERS == NUMBERS);

/// One call's result, held for the JVM until it has read what it needs.
pub struct Outcome {
    output: Vec<u8>,
    report: Option<CallReport>,
    error: Option<Error>,
}

/// The pack a handle stands for.
///
/// # Safety
/// `handle` came from `NativePack::fast_handle` and was not released.
unsafe fn pack_of<'a>(handle: u64) -> &'a Pack {
    // SAFETY: the caller holds the handle alive (FastPack.kt counts calls in flight).
    unsafe { &*(handle as *const Pack) }
}

/// The outcome a handle stands for.
///
/// # Safety
/// `handle` came from `packhost_jvm_call` and was not freed.
unsafe fn outcome_of<'a>(handle: u64) -> &'a Outcome {
    // SAFETY: the caller frees the outcome only after its last read.
    unsafe { &*(handle as *const Outcome) }
}

/// # Safety
/// `data` points at `length` readable bytes, or `length` is 0.
unsafe fn bytes<'a>(data: *const u8, length: i32) -> &'a [u8] {
    if data.is_null() || length <= 0 {
        return &[];
    }
    // SAFETY: JNA passes the array's memory for the duration of the call.
    unsafe { std::slice::from_raw_parts(data, length as usize) }
}

/// A clone of the core pack behind a handle for the fast path (`packhost_jvm_call`).
pub fn new_handle(pack: &Pack) -> u64 {
    Box::into_raw(Box::new(pack.clone())) as u64
}

/// Runs `action` on `input` with call options as JSON text (none when `options_length` is
/// 0) and writes [`NUMBERS`] numbers: success, the output's address and length, whether
/// there are logs and audit entries, then the usage. Returns the outcome's handle, which
/// the caller frees with `packhost_jvm_outcome_free` after reading the output.
///
/// # Safety
/// `pack` is a live pack handle; each pointer points at as many bytes as its length says;
/// `numbers` at [`NUMBERS`] writable `i64`s.
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
) -> u64 {
    // SAFETY: as the function's contract says.
    let (pack, action, input, options) = unsafe {
        (
            pack_of(pack),
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
        pack.call_reading(action, input, &options, <[u8]>::to_vec)
    });
    let outcome = match result {
        Ok((output, report)) => Outcome {
            output,
            report: Some(report),
            error: None,
        },
        Err(error) => Outcome {
            output: Vec::new(),
            report: None,
            error: Some(error),
        },
    };
    let mut written = [0i64; NUMBERS];
    written[OK] = i64::from(outcome.error.is_none());
    written[OUTPUT_ADDRESS] = outcome.output.as_ptr() as i64;
    written[OUTPUT_LENGTH] = outcome.output.len() as i64;
    if let Some(report) = &outcome.report {
        written[HAS_LOGS] = i64::from(!report.logs.is_empty());
        written[HAS_AUDIT] = i64::from(!report.audit.is_empty());
        for (slot, counter) in written[USAGE..].iter_mut().zip(report.usage.counters()) {
            *slot = counter as i64;
        }
    }
    // SAFETY: `numbers` points at NUMBERS writable i64s.
    unsafe { std::ptr::copy_nonoverlapping(written.as_ptr(), numbers, NUMBERS) };
    Box::into_raw(Box::new(outcome)) as u64
}

/// Frees a call's outcome.
///
/// # Safety
/// `outcome` came from `packhost_jvm_call` and is freed once.
#[no_mangle]
pub unsafe extern "C" fn packhost_jvm_outcome_free(outcome: u64) {
    // SAFETY: as the function's contract says.
    drop(unsafe { Box::from_raw(outcome as *mut Outcome) });
}

/// Releases a pack handle.
///
/// # Safety
/// `pack` came from `NativePack::fast_handle` and is released once, with no call using it.
#[no_mangle]
pub unsafe extern "C" fn packhost_jvm_pack_release(pack: u64) {
    // SAFETY: as the function's contract says.
    drop(unsafe { Box::from_raw(pack as *mut Pack) });
}

/// The report (usage, logs, audit) of a successful fast call, read when it has logs or
/// audit entries. `outcome` must be a live handle from `packhost_jvm_call`.
#[uniffi::export]
pub fn outcome_report(outcome: u64) -> Option<crate::CallReport> {
    // SAFETY: the Kotlin layer passes only live outcome handles.
    let outcome = unsafe { outcome_of(outcome) };
    outcome.report.clone().map(crate::CallReport::from)
}

/// The failure of a failed fast call, thrown as `PackFailure` (and nothing for a success).
/// `outcome` must be a live handle from `packhost_jvm_call`.
#[uniffi::export]
pub fn outcome_failure(outcome: u64) -> Result<(), PackFailure> {
    // SAFETY: the Kotlin layer passes only live outcome handles.
    let outcome = unsafe { outcome_of(outcome) };
    match &outcome.error {
        Some(error) => Err(PackFailure::from(error.clone())),
        None => Ok(()),
    }
}
