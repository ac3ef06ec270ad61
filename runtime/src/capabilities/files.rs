//! Host directories lent to WASI packs (`allowed_paths`, Extism's format): which mounts a
//! pack gets, read-only or not, checked once at load for both engines.
//!
//! The host names each directory and where the pack sees it (`host → guest`, `ro:` before
//! the host path for read-only). A pack with a packhost manifest gets only the guest paths
//! its manifest names under `paths`; a plugin without one gets every mount, as in Extism.
//! Nothing is mounted without `allow_wasi`, and a directory that does not exist is refused
//! at load rather than at the first call.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The prefix of a host path mounted read-only.
const READ_ONLY: &str = "ro:";

/// One host directory as the pack sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The directory on the host.
    pub(crate) host: PathBuf,
    /// Where the pack finds it (its preopened name).
    pub(crate) guest: String,
    /// Whether the pack may only read it.
    pub(crate) read_only: bool,
}

impl Mount {
    /// The host path in Extism's format, `ro:` included.
    pub(crate) fn extism_source(&self) -> String {
        let host = self.host.display();
        if self.read_only {
            format!("{READ_ONLY}{host}")
        } else {
            host.to_string()
        }
    }
}

/// Reads `allowed_paths` (host → guest) and checks each host directory exists.
///
/// # Errors
/// `invalid_options` naming the entry: an empty path, a host path that is not a directory,
/// or mounts without `allow_wasi`.
pub(crate) fn parse(
    allowed_paths: &BTreeMap<String, String>,
    allow_wasi: bool,
) -> Result<Vec<Mount>> {
    if !allowed_paths.is_empty() && !allow_wasi {
        return Err(Error::invalid_options(
            "allowed_paths mounts directories through WASI; set allow_wasi too",
        ));
    }
    let mut mounts = Vec::with_capacity(allowed_paths.len());
    for (source, guest) in allowed_paths {
        let (host, read_only) = match source.strip_prefix(READ_ONLY) {
            Some(host) => (host, true),
            None => (source.as_str(), false),
        };
        if host.is_empty() || guest.is_empty() {
            return Err(Error::invalid_options(format!(
                "allowed_paths: {source:?} → {guest:?} needs a host and a guest path"
            )));
        }
        let host = PathBuf::from(host);
        if !host.is_dir() {
            return Err(Error::invalid_options(format!(
                "allowed_paths: {} is not a directory on the host",
                host.display()
            )));
        }
        mounts.push(Mount {
            host,
            guest: guest.clone(),
            read_only,
        });
    }
    Ok(mounts)
}

/// The mounts a pack gets: those whose guest path it `asked` for.
pub(crate) fn granted(mounts: Vec<Mount>, asked: &[String]) -> Vec<Mount> {
    mounts
        .into_iter()
        .filter(|mount| asked.contains(&mount.guest))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(host, guest)| (host.to_string(), guest.to_string()))
            .collect()
    }

    #[test]
    fn ro_prefix_mounts_read_only_and_a_missing_directory_is_refused() {
        let temp = std::env::temp_dir();
        let host = temp.display().to_string();
        let mounts = parse(
            &paths(&[(&format!("ro:{host}"), "/data"), (&host, "/scratch")]),
            true,
        )
        .unwrap();
        let data = mounts.iter().find(|m| m.guest == "/data").unwrap();
        assert!(data.read_only);
        assert_eq!(data.extism_source(), format!("ro:{host}"));
        assert!(
            !mounts
                .iter()
                .find(|m| m.guest == "/scratch")
                .unwrap()
                .read_only
        );

        let missing = parse(&paths(&[("/no/such/packhost/dir", "/x")]), true).unwrap_err();
        assert_eq!(missing.code(), "invalid_options");
        assert!(missing.message().contains("not a directory"), "{missing}");
        let no_wasi = parse(&paths(&[(&host, "/x")]), false).unwrap_err();
        assert!(no_wasi.message().contains("allow_wasi"), "{no_wasi}");
        assert_eq!(
            granted(mounts, &["/data".to_string()])
                .iter()
                .map(|m| m.guest.as_str())
                .collect::<Vec<_>>(),
            ["/data"]
        );
    }
}
