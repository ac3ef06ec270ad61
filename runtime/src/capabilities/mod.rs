//! What packhost lends packs, each capability once for both engines: its grant check, its
//! limits and its failures live here, and each engine's ABI function only moves bytes in and
//! out of the pack.

pub(crate) mod host_fn;
pub(crate) mod http;
pub(crate) mod kv;
