//! `Packhost::Pack`'s native methods: load a pack, describe it, call it.
//!
//! Each method converts its arguments, runs the core with the GVL released where the work
//! can take time, and converts back. The idiomatic API (`Pack.load`, `#call`, results,
//! logging) is Ruby code in `lib/packhost/pack.rb` over these.

use magnus::{
    function, method, prelude::*, value::ReprValue, Error, RArray, RModule, RString, Ruby,
};
use packhost::{Pack, PackOptions};

use crate::convert::to_ruby;
use crate::errors::{guard, panic_error, raise};
use crate::gvl::without_gvl;

/// A loaded pack, owned by a Ruby object. Freed when Ruby collects the object.
#[magnus::wrap(class = "Packhost::Pack", free_immediately, size)]
struct RbPack {
    pack: Pack,
    /// Bytes this object keeps alive outside Ruby's heap, reported to Ruby's GC so a loop
    /// that loads many packs triggers collection as their memory grows.
    external_bytes: isize,
}

impl Drop for RbPack {
    fn drop(&mut self) {
        // SAFETY: Ruby frees typed data on a Ruby thread holding the GVL.
        unsafe { rb_sys::rb_gc_adjust_memory_usage(-self.external_bytes as _) };
    }
}

pub(crate) fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("Pack", ruby.class_object())?;
    // Packs come only from `Pack.load`; an object made by `allocate` would hold no pack.
    class.undef_default_alloc_func();
    class.define_singleton_method("__load_bytes", function!(load_bytes, 2))?;
    class.define_singleton_method("__load_file", function!(load_file, 2))?;
    class.define_method("__call", method!(RbPack::call, 2))?;
    class.define_method("id", method!(RbPack::id, 0))?;
    class.define_method("actions", method!(RbPack::actions, 0))?;
    class.define_method("__manifest_json", method!(RbPack::manifest_json, 0))?;
    class.define_method(
        "embedded_manifest?",
        method!(RbPack::has_embedded_manifest, 0),
    )?;
    class.define_method("allowed_hosts", method!(RbPack::allowed_hosts, 0))?;
    Ok(())
}

/// Loads a pack from module bytes with options given as JSON text.
fn load_bytes(ruby: &Ruby, bytes: RString, options_json: String) -> Result<RbPack, Error> {
    guard(ruby, |ruby| {
        // SAFETY: the slice is copied before anything else can run Ruby code.
        let bytes = unsafe { bytes.as_slice() }.to_vec();
        let size = bytes.len();
        load_with(ruby, size, move || {
            Pack::load(&bytes, PackOptions::from_json(&options_json)?)
        })
    })
}

/// Loads a pack from a `.wasm` file with options given as JSON text.
fn load_file(ruby: &Ruby, path: String, options_json: String) -> Result<RbPack, Error> {
    guard(ruby, |ruby| {
        let size = std::fs::metadata(&path).map_or(0, |meta| meta.len() as usize);
        load_with(ruby, size, move || {
            Pack::load_file(&path, PackOptions::from_json(&options_json)?)
        })
    })
}

/// Runs a load without the GVL (validating a module takes milliseconds) and wraps the pack.
fn load_with(
    ruby: &Ruby,
    size: usize,
    load: impl FnOnce() -> packhost::Result<Pack>,
) -> Result<RbPack, Error> {
    let pack = without_gvl(load)
        .unwrap_or_else(|payload| Err(panic_error(payload)))
        .map_err(|err| raise(ruby, &err))?;
    let external_bytes = isize::try_from(size).unwrap_or(isize::MAX);
    // SAFETY: called with the GVL held, as every native method is.
    unsafe { rb_sys::rb_gc_adjust_memory_usage(external_bytes as _) };
    Ok(RbPack {
        pack,
        external_bytes,
    })
}

impl RbPack {
    /// Calls an action and returns `[output, usage, logs]`: the output as a binary String,
    /// the usage as a Hash and the log lines as an Array of Hashes.
    fn call(ruby: &Ruby, rb_self: &Self, action: String, input: RString) -> Result<RArray, Error> {
        guard(ruby, |ruby| {
            // SAFETY: the input is copied while the GVL is held; the call below runs
            // without the GVL and must not see Ruby memory.
            let input = unsafe { input.as_slice() }.to_vec();
            let pack = &rb_self.pack;
            let result = without_gvl(|| pack.call(&action, &input))
                .unwrap_or_else(|payload| Err(panic_error(payload)))
                .map_err(|err| raise(ruby, &err))?;
            // Text arrives as a UTF-8 String and anything else as a binary one, so Ruby never
            // re-scans the bytes to pick the encoding.
            let output = match std::str::from_utf8(&result.output) {
                Ok(text) => ruby.str_new(text),
                Err(_) => ruby.str_from_slice(&result.output),
            };
            // Usage as five integers in `Usage`'s member order, and no log list when nothing
            // was logged: the common call builds no Hash and no log objects.
            let usage = ruby.ary_from_iter([
                result.usage.wall_time_us,
                result.usage.fuel_consumed,
                result.usage.peak_memory_bytes,
                result.usage.input_bytes,
                result.usage.output_bytes,
            ]);
            let logs = if result.logs.is_empty() {
                ruby.qnil().as_value()
            } else {
                to_ruby(ruby, &result.logs)?
            };
            Ok(ruby.ary_new_from_values(&[output.as_value(), usage.as_value(), logs]))
        })
    }

    /// The SHA-256 of the module bytes, in lowercase hex.
    fn id(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        guard(ruby, |_| Ok(rb_self.pack.id().to_string()))
    }

    /// The action names, `pre` and `post` included, in manifest order.
    fn actions(ruby: &Ruby, rb_self: &Self) -> Result<Vec<String>, Error> {
        guard(ruby, |_| {
            Ok(rb_self
                .pack
                .actions()
                .into_iter()
                .map(str::to_string)
                .collect())
        })
    }

    /// The manifest as JSON text; the Ruby half parses it once.
    fn manifest_json(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        guard(ruby, |ruby| {
            serde_json::to_string(rb_self.pack.manifest()).map_err(|err| {
                raise(
                    ruby,
                    &packhost::Error::new(packhost::ErrorKind::Internal, err.to_string()),
                )
            })
        })
    }

    fn has_embedded_manifest(ruby: &Ruby, rb_self: &Self) -> Result<bool, Error> {
        guard(ruby, |_| Ok(rb_self.pack.has_embedded_manifest()))
    }

    fn allowed_hosts(ruby: &Ruby, rb_self: &Self) -> Result<Vec<String>, Error> {
        guard(ruby, |_| Ok(rb_self.pack.allowed_hosts().to_vec()))
    }
}
