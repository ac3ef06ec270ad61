//! A real OCI registry for tests: Debian's `docker-registry` (the distribution project's
//! registry) on a free loopback port with a temporary storage folder, optionally behind
//! basic authentication, stopped and removed when dropped.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `docker-registry` (see the module docs).
pub struct LocalRegistry {
    process: Child,
    port: u16,
    folder: PathBuf,
}

impl LocalRegistry {
    /// Starts a registry anyone may push to and pull from, and waits (at most ten seconds)
    /// until it answers.
    ///
    /// # Errors
    /// When `docker-registry` cannot be started or does not answer in time.
    pub fn start() -> std::io::Result<LocalRegistry> {
        Self::start_with(None)
    }

    /// Starts a registry that takes only `user` with `password` (HTTP basic authentication
    /// from an htpasswd file, made with Apache's `htpasswd`).
    ///
    /// # Errors
    /// As [`LocalRegistry::start`], or when `htpasswd` fails.
    pub fn start_with_basic_auth(user: &str, password: &str) -> std::io::Result<LocalRegistry> {
        Self::start_with(Some((user, password)))
    }

    fn start_with(credentials: Option<(&str, &str)>) -> std::io::Result<LocalRegistry> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let folder = std::env::temp_dir().join(format!(
            "packhost-registry-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(folder.join("data"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            folder.join("data").display()
        );
        if let Some((user, password)) = credentials {
            let htpasswd = folder.join("htpasswd");
            let made = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .stderr(Stdio::inherit())
                .output()?;
            if !made.status.success() {
                return Err(std::io::Error::other("htpasswd failed"));
            }
            std::fs::write(&htpasswd, made.stdout)?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: packhost-tests\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = folder.join("config.yml");
        std::fs::write(&config_path, config)?;
        let process = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let registry = LocalRegistry {
            process,
            port,
            folder,
        };
        registry.wait_until_it_answers()?;
        Ok(registry)
    }

    /// `127.0.0.1:PORT`, the registry part of references to it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The file where the registry keeps the blob `digest` (`sha256:…`): what a test
    /// tampers with.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.folder
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2.min(hex.len())])
            .join(hex)
            .join("data")
    }

    /// The registry's storage folder.
    pub fn storage(&self) -> &Path {
        &self.folder
    }

    /// Stops the registry (the storage stays until the value is dropped).
    pub fn stop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    fn wait_until_it_answers(&self) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            if Instant::now() >= deadline {
                return Err(std::io::Error::other(
                    "docker-registry did not answer in 10 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Whether `GET /v2/` gets an HTTP answer (200, or 401 behind authentication).
    fn answers(&self) -> bool {
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 12];
        stream
            .write_all(b"GET /v2/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && (reply.ends_with(b"200") || reply.ends_with(b"401"))
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}
