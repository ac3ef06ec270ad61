//! `packhost push`, `pull` and `store`: packs published to and pulled from OCI registries,
//! and the local store every host loads `oci://` references from.

use std::path::Path;

use packhost::PackStore;

use crate::Failure;

/// `packhost push PACK REFERENCE [--signature SIG]`.
pub(crate) fn push(pack: &Path, reference: &str, signature: Option<&Path>) -> Result<(), Failure> {
    let pushed = packhost_oci::push(pack, reference, signature)?;
    println!(
        "pushed {} to {}{}",
        pack.display(),
        pushed.reference,
        if pushed.signed { " (signed)" } else { "" }
    );
    println!("manifest {}", pushed.manifest_digest);
    println!("pack     {}", pushed.pack_digest);
    Ok(())
}

/// `packhost pull REFERENCE`: into the store, pinned there.
pub(crate) fn pull(reference: &str) -> Result<(), Failure> {
    let store = PackStore::open_default()?;
    let pulled = packhost_oci::pull(reference, &store)?;
    println!(
        "pulled {}{}",
        pulled.reference,
        if pulled.signed { " (signed)" } else { "" }
    );
    println!("manifest {}", pulled.manifest_digest);
    println!("pack     {}", pulled.pack_digest);
    println!("path     {}", pulled.path.display());
    Ok(())
}

/// `packhost store ls [--json]`.
pub(crate) fn list(as_json: bool) -> Result<(), Failure> {
    let store = PackStore::open_default()?;
    let packs = store.list()?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&packs).unwrap_or_default()
        );
        return Ok(());
    }
    println!("store {}", store.root().display());
    for pack in &packs {
        println!(
            "{}  {:>9} bytes{}",
            pack.digest,
            pack.size,
            if pack.signed { "  signed" } else { "" }
        );
        for reference in &pack.references {
            println!("    {reference}");
        }
    }
    if packs.is_empty() {
        println!("(empty)");
    }
    Ok(())
}

/// `packhost store gc`.
pub(crate) fn gc() -> Result<(), Failure> {
    let report = PackStore::open_default()?.gc()?;
    println!(
        "removed {} pack(s) no reference is pinned to, {} bytes freed",
        report.removed, report.freed_bytes
    );
    Ok(())
}

/// `packhost store rm REFERENCE`: the pin goes; the pack goes at the next `gc`.
pub(crate) fn unpin(reference: &str) -> Result<(), Failure> {
    let store = PackStore::open_default()?;
    let key = packhost_oci::pin_key(reference)?;
    if !store.unpin(&key)? {
        return Err(Failure::Usage(format!(
            "{key} is not pinned in {}",
            store.root().display()
        )));
    }
    println!("unpinned {key}; `packhost store gc` removes its pack if nothing else pins it");
    Ok(())
}
