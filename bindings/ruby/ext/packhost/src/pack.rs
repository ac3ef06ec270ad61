//! `Packhost::Pack`'s native methods: load a pack, describe it, call it.
//!
//! Each method converts its arguments, runs the core with the GVL released where the work
//! can take time, and converts back. The idiomatic API (`Pack.load`, `#call`, results,
//! logging, host functions) is Ruby code in `lib/packhost/pack.rb` over these.

use magnus::{
    function, method, prelude::*, value::Opaque, value::ReprValue, Error, IntoValue, RArray,
    RModule, RString, Ruby,
};
use packhost::{CallOptions, Pack, PackOptions};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::RwLock;

use crate::cancel::RbCancelToken;
use crate::convert::to_ruby;
use crate::errors::{guard, panic_error, raise, raise_with};
use crate::gvl::{without_gvl, Gvl, Interrupts};
use crate::host_fn::{host_functions, scope, Failure};

/// A loaded pack, owned by a Ruby object. Freed when Ruby collects the object.
#[magnus::wrap(class = "Packhost::Pack", free_immediately, size)]
pub(crate) struct RbPack {
    /// Behind a lock so `#reload` can swap the next version in while other threads call
    /// (each call takes its own handle first, so it finishes on the version it started on).
    pack: RwLock<Pack>,
    /// The number its host functions carry (`host_fn`), the same for every version: a flow
    /// run finds this pack's adapters by it.
    lender: u64,
    /// Bytes this object keeps alive outside Ruby's heap, reported to Ruby's GC so a loop
    /// that loads many packs triggers collection as their memory grows.
    external_bytes: AtomicIsize,
}

impl Drop for RbPack {
    fn drop(&mut self) {
        let bytes = self.external_bytes.load(Ordering::Relaxed);
        // SAFETY: Ruby frees typed data on a Ruby thread holding the GVL.
        unsafe { rb_sys::rb_gc_adjust_memory_usage(-bytes as _) };
    }
}

pub(crate) fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("Pack", ruby.class_object())?;
    // Packs come only from `Pack.load`; an object made by `allocate` would hold no pack.
    class.undef_default_alloc_func();
    class.define_singleton_method("__load_bytes", function!(load_bytes, 3))?;
    class.define_singleton_method("__load_file", function!(load_file, 3))?;
    class.define_singleton_method("__load_extism_manifest", function!(load_extism_manifest, 3))?;
    class.define_method("__call", method!(RbPack::call, 5))?;
    class.define_method("__reload_bytes", method!(RbPack::reload_bytes, 1))?;
    class.define_method("__reload_file", method!(RbPack::reload_file, 1))?;
    class.define_method("id", method!(RbPack::id, 0))?;
    class.define_method("actions", method!(RbPack::actions, 0))?;
    class.define_method("__manifest_json", method!(RbPack::manifest_json, 0))?;
    class.define_method(
        "embedded_manifest?",
        method!(RbPack::has_embedded_manifest, 0),
    )?;
    class.define_method("allowed_hosts", method!(RbPack::allowed_hosts, 0))?;
    class.define_method("__stats_json", method!(RbPack::stats_json, 0))?;
    Ok(())
}

/// Loads a pack from module bytes with options given as JSON text, lending it one host
/// function per `(namespace, name)` pair; the N-th runs the N-th adapter of the Array each
/// call passes (see `host_fn`).
fn load_bytes(
    ruby: &Ruby,
    bytes: RString,
    options_json: String,
    functions: Vec<(String, String)>,
) -> Result<RbPack, Error> {
    guard(ruby, |ruby| {
        // SAFETY: the slice is copied before anything else can run Ruby code.
        let bytes = unsafe { bytes.as_slice() }.to_vec();
        let size = bytes.len();
        let (lender, functions) = host_functions(functions);
        load_with(ruby, size, lender, move || {
            Pack::load_with(&bytes, PackOptions::from_json(&options_json)?, functions)
        })
    })
}

/// Loads a pack from a `.wasm` file or an `oci://` reference with options given as JSON
/// text, lending it host functions as [`load_bytes`] does.
fn load_file(
    ruby: &Ruby,
    path: String,
    options_json: String,
    functions: Vec<(String, String)>,
) -> Result<RbPack, Error> {
    guard(ruby, |ruby| {
        let size = std::fs::metadata(&path).map_or(0, |meta| meta.len() as usize);
        let (lender, functions) = host_functions(functions);
        load_with(ruby, size, lender, move || {
            packhost_oci::register();
            Pack::load_reference(&path, PackOptions::from_json(&options_json)?, functions)
        })
    })
}

/// Loads the plugin an Extism manifest (JSON text) describes, with options given as JSON
/// text, lending it host functions as [`load_bytes`] does.
fn load_extism_manifest(
    ruby: &Ruby,
    manifest_json: String,
    options_json: String,
    functions: Vec<(String, String)>,
) -> Result<RbPack, Error> {
    guard(ruby, |ruby| {
        let (lender, functions) = host_functions(functions);
        load_with(ruby, manifest_json.len(), lender, move || {
            Pack::load_extism_manifest(
                &manifest_json,
                PackOptions::from_json(&options_json)?,
                functions,
            )
        })
    })
}

/// Runs a load without the GVL (validating a module takes milliseconds) and wraps the pack,
/// whose host functions carry `lender`.
fn load_with(
    ruby: &Ruby,
    size: usize,
    lender: u64,
    load: impl FnOnce() -> packhost::Result<Pack>,
) -> Result<RbPack, Error> {
    let mut interrupts = Interrupts::default();
    let loaded = without_gvl(&mut interrupts, load);
    interrupts.deliver()?;
    let pack = loaded
        .unwrap_or_else(|payload| Err(panic_error(payload)))
        .map_err(|err| raise(ruby, &err))?;
    let external_bytes = isize::try_from(size).unwrap_or(isize::MAX);
    // SAFETY: called with the GVL held, as every native method is.
    unsafe { rb_sys::rb_gc_adjust_memory_usage(external_bytes as _) };
    Ok(RbPack {
        pack: RwLock::new(pack),
        lender,
        external_bytes: AtomicIsize::new(external_bytes),
    })
}

impl RbPack {
    /// The version calls run on now: a handle of its own, so a reload during the call
    /// leaves it alone.
    pub(crate) fn current(&self) -> Pack {
        self.pack
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// The number this pack's host functions carry (see `host_fn::scope_flow`).
    pub(crate) fn lender(&self) -> u64 {
        self.lender
    }

    /// Loads the next version from module bytes (without the GVL) and swaps it in.
    fn reload_bytes(ruby: &Ruby, rb_self: &Self, bytes: RString) -> Result<(), Error> {
        guard(ruby, |ruby| {
            // SAFETY: the slice is copied before anything else can run Ruby code.
            let bytes = unsafe { bytes.as_slice() }.to_vec();
            let pack = rb_self.current();
            let size = bytes.len();
            rb_self.swap(ruby, size, move || pack.load_next_bytes(&bytes))
        })
    }

    /// Loads the next version from a `.wasm` file or an `oci://` reference and swaps it in.
    fn reload_file(ruby: &Ruby, rb_self: &Self, path: String) -> Result<(), Error> {
        guard(ruby, |ruby| {
            let pack = rb_self.current();
            let size = std::fs::metadata(&path).map_or(0, |meta| meta.len() as usize);
            rb_self.swap(ruby, size, move || {
                packhost_oci::register();
                pack.load_next(&path)
            })
        })
    }

    fn swap(
        &self,
        ruby: &Ruby,
        size: usize,
        load: impl FnOnce() -> packhost::Result<Pack>,
    ) -> Result<(), Error> {
        // The next version lends the same functions, so it keeps this pack's lender.
        let next = load_with(ruby, size, self.lender, load)?;
        let next_pack = next
            .pack
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        *self
            .pack
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = next_pack;
        // The old version's bytes go with it; `next`'s count moves here (its drop then
        // gives back nothing).
        let moved = next.external_bytes.swap(0, Ordering::Relaxed);
        let old = self.external_bytes.swap(moved, Ordering::Relaxed);
        // SAFETY: called with the GVL held, as every native method is.
        unsafe { rb_sys::rb_gc_adjust_memory_usage(-old as _) };
        Ok(())
    }

    /// Calls an action and returns `[output, usage, logs, audit]`: the output as a String,
    /// the usage as an Array of integers, then the context, then the pack's name, version
    /// and id and the action as Strings, the log lines as an Array of Hashes (nil when
    /// none), and the audit trail as an Array of Hashes (nil when empty). `call_options` is
    /// the core's `CallOptions` as JSON text (nil for none); `cancel` is a
    /// `Packhost::CancelToken` that ends the call when another thread cancels it (nil for
    /// none); `adapters` is the pack's frozen Array of host-function adapters (nil for none).
    fn call(
        ruby: &Ruby,
        rb_self: &Self,
        action: String,
        input: RString,
        call_options: Option<String>,
        cancel: Option<&RbCancelToken>,
        adapters: Option<RArray>,
    ) -> Result<RArray, Error> {
        guard(ruby, |ruby| {
            // SAFETY: the input is copied while the GVL is held; the call below may run
            // without the GVL and must not see Ruby memory.
            let input = unsafe { input.as_slice() }.to_vec();
            let mut options = match call_options {
                Some(json) => CallOptions::from_json(&json).map_err(|err| raise(ruby, &err))?,
                None => CallOptions::default(),
            };
            options.cancel = cancel.map(RbCancelToken::token);
            let pack = rb_self.current();
            // The Array stays a live argument of this method for the whole call, so the GC
            // keeps it where it is while handlers read it.
            let adapters = adapters.map(Opaque::from);
            let mut gvl = Gvl::default();
            let (outcome, failure) = scope(adapters, || {
                pack.call_locked(&action, &input, &options, &mut gvl, <[u8]>::to_vec)
            });
            gvl.interrupts.deliver()?;
            let result = outcome.unwrap_or_else(|payload| Err(panic_error(payload)));
            let (output, report) = match result {
                Ok(done) => done,
                Err(err) => return Err(call_error(ruby, &err, failure)),
            };
            // Text arrives as a UTF-8 String and anything else as a binary one, so Ruby never
            // re-scans the bytes to pick the encoding.
            let output = match std::str::from_utf8(&output) {
                Ok(text) => ruby.str_new(text),
                Err(_) => ruby.str_from_slice(&output),
            };
            // Usage in `Usage`'s member order: the integers, the context (nil when none),
            // then the Strings naming the pack and the action. No log list when nothing was
            // logged and no audit list when no capability was used: the common call builds
            // no Hash, no log objects and no audit entries.
            let usage = &report.usage;
            let mut values = usage
                .counters()
                .map(|number| number.into_value_with(ruby))
                .to_vec();
            values.push(to_ruby(ruby, &usage.context)?);
            values.extend(
                [
                    &usage.pack_name,
                    &usage.pack_version,
                    &usage.pack_id,
                    &usage.action,
                ]
                .map(|text| ruby.str_new(text).as_value()),
            );
            let usage = ruby.ary_new_from_values(&values);
            let logs = if report.logs.is_empty() {
                ruby.qnil().as_value()
            } else {
                to_ruby(ruby, &report.logs)?
            };
            let audit = if report.audit.is_empty() {
                ruby.qnil().as_value()
            } else {
                to_ruby(ruby, &report.audit)?
            };
            Ok(ruby.ary_new_from_values(&[output.as_value(), usage.as_value(), logs, audit]))
        })
    }

    /// The SHA-256 of the module bytes, in lowercase hex.
    fn id(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        guard(ruby, |_| Ok(rb_self.current().id().to_string()))
    }

    /// The action names, `pre` and `post` included, in manifest order.
    fn actions(ruby: &Ruby, rb_self: &Self) -> Result<Vec<String>, Error> {
        guard(ruby, |_| {
            Ok(rb_self
                .current()
                .actions()
                .into_iter()
                .map(str::to_string)
                .collect())
        })
    }

    /// The manifest as JSON text; the Ruby half parses it once.
    fn manifest_json(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        guard(ruby, |ruby| {
            serde_json::to_string(rb_self.current().manifest()).map_err(|err| {
                raise(
                    ruby,
                    &packhost::Error::new(packhost::ErrorKind::Internal, err.to_string()),
                )
            })
        })
    }

    fn has_embedded_manifest(ruby: &Ruby, rb_self: &Self) -> Result<bool, Error> {
        guard(ruby, |_| Ok(rb_self.current().has_embedded_manifest()))
    }

    fn allowed_hosts(ruby: &Ruby, rb_self: &Self) -> Result<Vec<String>, Error> {
        guard(ruby, |_| Ok(rb_self.current().allowed_hosts().to_vec()))
    }

    /// The counts and totals of the pack's calls since it was loaded (the core's
    /// `PackStats`) as JSON text; the Ruby half parses it.
    fn stats_json(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        guard(ruby, |ruby| {
            serde_json::to_string(&rb_self.current().stats()).map_err(|err| {
                raise(
                    ruby,
                    &packhost::Error::new(packhost::ErrorKind::Internal, err.to_string()),
                )
            })
        })
    }
}

/// The Ruby error a failed call raises, given how a handler failed, if one did. What is not
/// an error goes on as it began once the pack is out of the way: a `throw` or a killed
/// thread resumes, and an exception outside `StandardError` (`Interrupt`, `SystemExit`) is
/// raised as it is. Anything else becomes the core error's exception, a
/// `Packhost::HostFunctionError` carrying the handler's exception. Flow runs (`flow.rs`)
/// raise their errors through it too.
pub(crate) fn call_error(ruby: &Ruby, err: &packhost::Error, failure: Option<Failure>) -> Error {
    match failure {
        Some(Failure::Jumped(jump)) => jump,
        Some(Failure::Raised(exception))
            if !exception.is_kind_of(ruby.exception_standard_error()) =>
        {
            Error::from(*exception)
        }
        Some(Failure::Raised(exception)) if err.host_function().is_some() => {
            raise_with(ruby, err, Some(*exception))
        }
        _ => raise(ruby, err),
    }
}
