//! `packhost keygen`, `sign` and `verify`: ed25519 key pairs, a pack's signature written
//! beside it (`PACK.sig`), and a pack checked as a host with a trust policy loads it.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use packhost::{signature_path, KeyPair, PackOptions, PackSignature};

use crate::Failure;

/// `packhost keygen -o FILE`: a new key pair in FILE (mode 0600, never overwritten); the
/// public key, which hosts list in `trusted_keys`, on stdout.
pub(crate) fn keygen(output: &Path) -> Result<(), Failure> {
    let keys = KeyPair::generate()?;
    let json = serde_json::to_string_pretty(&keys).unwrap_or_default();
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(output)
        .and_then(|mut file| file.write_all(format!("{json}\n").as_bytes()))
        .map_err(|err| Failure::Usage(format!("{}: {err}", output.display())))?;
    eprintln!(
        "wrote the key pair to {} (keep it private); its public key:",
        output.display()
    );
    println!("{}", keys.public_key);
    Ok(())
}

/// `packhost sign PACK --key FILE [-o SIG]`: signs the pack's SHA-256, name and version.
pub(crate) fn sign(
    pack_path: &Path,
    key_file: &Path,
    output: Option<&Path>,
    load: impl Fn(&Path, PackOptions) -> packhost::Result<packhost::Pack>,
) -> Result<(), Failure> {
    // serde's message would quote the file, which holds a secret: only where it went wrong.
    let keys: KeyPair = serde_json::from_slice(&crate::read_file(key_file)?).map_err(|err| {
        Failure::Usage(format!(
            "{}: not a key file from `packhost keygen` ({:?} error at line {}, column {})",
            key_file.display(),
            err.classify(),
            err.line(),
            err.column()
        ))
    })?;
    let pack = load(pack_path, crate::wasi_allowed())?;
    let manifest = pack.manifest();
    if !pack.has_embedded_manifest() {
        eprintln!(
            "warning: the pack has no manifest, so it is signed under the name {:?} taken from \
             its file name: renamed, or loaded from bytes, it no longer matches its signature",
            manifest.name
        );
    }
    let signature = PackSignature::sign(
        pack.id(),
        &manifest.name,
        &manifest.version,
        &keys.secret_key,
    )?;
    let output = output.map_or_else(|| signature_path(pack_path), Path::to_path_buf);
    let json = serde_json::to_string_pretty(&signature).unwrap_or_default();
    crate::write_atomically(&output, format!("{json}\n").as_bytes()).map_err(Failure::Usage)?;
    println!(
        "signed {} {} ({}) with {} -> {}",
        manifest.name,
        manifest.version,
        pack.id(),
        signature.key,
        output.display()
    );
    Ok(())
}

/// A public key as given on the command line: the key itself (`ed25519:...`), or a file
/// holding it or a `packhost keygen` key pair. Nothing given is ever repeated in a message,
/// since it may be a secret key passed by mistake.
fn public_key_of(given: &str) -> Result<String, Failure> {
    if given.starts_with("ed25519:") {
        return Ok(given.to_string());
    }
    if given.starts_with("ed25519-secret:") {
        return Err(Failure::Usage(
            "--trusted-key was given a secret key; give its public key (or the key file)"
                .to_string(),
        ));
    }
    let path = Path::new(given);
    let bytes = std::fs::read(path).map_err(|err| {
        Failure::Usage(format!(
            "--trusted-key: neither a public key nor a readable file: {err}"
        ))
    })?;
    let text = String::from_utf8_lossy(&bytes);
    if text.trim_start().starts_with('{') {
        return serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|value| value["public_key"].as_str().map(str::to_string))
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "{}: a JSON file without a public_key",
                    path.display()
                ))
            });
    }
    let key = text.trim();
    if key.starts_with("ed25519:") {
        Ok(key.to_string())
    } else {
        Err(Failure::Usage(format!(
            "{}: holds no ed25519: public key",
            path.display()
        )))
    }
}

/// `packhost verify PACK --trusted-key KEY... [--signature SIG]`: loads the pack as a host
/// that requires a signature by one of the keys would.
pub(crate) fn verify(
    pack_path: &Path,
    trusted: &[String],
    signature: Option<&Path>,
    load: impl Fn(&Path, PackOptions) -> packhost::Result<packhost::Pack>,
) -> Result<(), Failure> {
    let mut options = crate::wasi_allowed();
    options.trusted_keys = trusted
        .iter()
        .map(|key| public_key_of(key))
        .collect::<Result<_, _>>()?;
    options.require_signature = true;
    // Read once and handed to the load, so the key printed is the key checked (and a pack
    // named by an Extism manifest, which loading does not look beside, is verified too).
    let signature_file = match signature {
        Some(file) => file.to_path_buf(),
        None => signature_path(&crate::local_file(pack_path)?),
    };
    if signature_file.exists() {
        options.signature = Some(PackSignature::from_json(&crate::read_file(
            &signature_file,
        )?)?);
    }
    options.validate()?;
    let by = options
        .signature
        .as_ref()
        .map(|signature| signature.key.clone());
    let pack = load(pack_path, options)?;
    let by = by.unwrap_or_default();
    println!(
        "ok {} {} ({}) is signed by {by}",
        pack.manifest().name,
        pack.manifest().version,
        pack.id()
    );
    Ok(())
}
