//! Bulk input and output with packhost's native engine: the input arrives in one copy
//! straight into the pack's memory, and the output leaves the same way, instead of through
//! the Extism ABI's 8-byte loads and stores.
//!
//! The host announces itself by calling the `__packhost_io_input` export (which `pack!`
//! defines) before each action. Hosts that never call it (every official Extism SDK, and
//! packhost's extism engine) get the plain ABI, so a pack runs unchanged everywhere.

use std::cell::RefCell;

#[derive(Default)]
struct Bulk {
    /// Set once a host has called `__packhost_io_input`: it will also collect output.
    active: bool,
    /// The buffer handed to the host for the next action's input, and its length.
    pending_input: Option<(Vec<u8>, usize)>,
    /// The last action's output, kept until the host has copied it out.
    kept_output: Option<Vec<u8>>,
}

thread_local! {
    static BULK: RefCell<Bulk> = RefCell::default();
}

/// `__packhost_io_input`: reserves `len` bytes for the next action's input and returns
/// their address; the host writes the whole input there before calling the action.
pub fn reserve_input(len: i32) -> i32 {
    BULK.with_borrow_mut(|bulk| {
        bulk.active = true;
        bulk.kept_output = None;
        let len = usize::try_from(len).unwrap_or(0);
        let mut buffer = Vec::with_capacity(len);
        let address = buffer.as_mut_ptr() as usize as i32;
        bulk.pending_input = Some((buffer, len));
        address
    })
}

/// The input the host delivered in bulk, if it did.
pub fn take_input() -> Option<Vec<u8>> {
    BULK.with_borrow_mut(|bulk| {
        let (mut buffer, len) = bulk.pending_input.take()?;
        // SAFETY: the host wrote all `len` bytes of the reserved capacity before it called
        // the action that is now reading them.
        unsafe { buffer.set_len(len) };
        Some(buffer)
    })
}

/// Sends `output` back: kept in memory for a bulk host, else through the Extism ABI.
pub fn send_output(output: Vec<u8>) -> Result<(), extism_pdk::Error> {
    let output = BULK.with_borrow_mut(|bulk| {
        if bulk.active {
            bulk.kept_output = Some(output);
            None
        } else {
            Some(output)
        }
    });
    match output {
        Some(output) => extism_pdk::output(output),
        None => Ok(()),
    }
}

/// `__packhost_io_output`: `address << 32 | length` of the kept output, or -1 when the
/// action kept none (it failed, or wrote its output through the Extism ABI).
pub fn kept_output() -> i64 {
    BULK.with_borrow(|bulk| match &bulk.kept_output {
        Some(output) => (((output.as_ptr() as usize as u64) << 32) | output.len() as u64) as i64,
        None => -1,
    })
}
