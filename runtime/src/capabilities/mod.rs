//! What packhost lends packs, each capability once for both engines: its grant check, its
//! limits and its failures live here, and each engine's ABI function only moves bytes in and
//! out of the pack.

pub(crate) mod audit;
pub(crate) mod files;
pub(crate) mod host_fn;
pub(crate) mod http;
pub(crate) mod kv;
pub(crate) mod secrets;

use std::sync::Arc;

/// The functions of packhost's own capabilities that `module` imports, bound to the pack's
/// grants (`None`: no key-value grant; every call then fails with `host_denied`, as does a
/// secret the grant lacks).
pub(crate) fn builtin_functions(
    module: &crate::module::ModuleInfo,
    kv: Option<Arc<kv::KvGrant>>,
    secrets: Arc<secrets::SecretGrant>,
) -> Vec<host_fn::HostFunction> {
    let mut functions = kv::functions_for(module, kv);
    functions.extend(secrets::functions_for(module, secrets));
    functions
}
