//! A real OCI registry for tests: Debian's `docker-registry` (the distribution project's
//! registry) on a free loopback port with a temporary storage folder, optionally behind
//! basic authentication or token authentication, stopped and removed when dropped.
//!
//! For token authentication the registry trusts a self-signed certificate made with
//! `openssl`, and a token server on another loopback port (a thread of this process) hands
//! out RS256 tokens signed with its key, for the scope asked, to one user and password given
//! as basic credentials: the flow Docker Hub and GHCR use.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `docker-registry` (see the module docs).
pub struct LocalRegistry {
    process: Child,
    port: u16,
    folder: PathBuf,
    token_server: Option<TokenServer>,
    /// The value of the header only this registry answers with, told from another test's
    /// registry that may hold the port when this one failed to bind it.
    marker: String,
}

/// How the registry lets clients in.
enum Access<'a> {
    Anyone,
    Basic(&'a str, &'a str),
    Token(&'a str, &'a str),
}

impl LocalRegistry {
    /// Starts a registry anyone may push to and pull from, and waits (at most ten seconds)
    /// until it answers.
    ///
    /// # Errors
    /// When `docker-registry` cannot be started or does not answer in time.
    pub fn start() -> std::io::Result<LocalRegistry> {
        Self::start_with(Access::Anyone)
    }

    /// Starts a registry that takes only `user` with `password` (HTTP basic authentication
    /// from an htpasswd file, made with Apache's `htpasswd`).
    ///
    /// # Errors
    /// As [`LocalRegistry::start`], or when `htpasswd` fails.
    pub fn start_with_basic_auth(user: &str, password: &str) -> std::io::Result<LocalRegistry> {
        Self::start_with(Access::Basic(user, password))
    }

    /// Starts a registry that takes only bearer tokens, which its token server gives `user`
    /// with `password` (see the module docs).
    ///
    /// # Errors
    /// As [`LocalRegistry::start`], or when `openssl` fails.
    pub fn start_with_token_auth(user: &str, password: &str) -> std::io::Result<LocalRegistry> {
        Self::start_with(Access::Token(user, password))
    }

    fn start_with(access: Access<'_>) -> std::io::Result<LocalRegistry> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let folder = std::env::temp_dir().join(format!(
            "packhost-registry-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(folder.join("data"))?;
        let port = packhost::testing::unused_loopback_port()?;
        let marker = folder.display().to_string();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  headers:\n    {MARKER_HEADER}: [\"{marker}\"]\n",
            folder.join("data").display()
        );
        let mut token_server = None;
        if let Access::Token(user, password) = access {
            let server = TokenServer::start(&folder, user, password)?;
            config.push_str(&format!(
                "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {TOKEN_SERVICE}\n    \
                 issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                server.port,
                folder.join("token.pem").display()
            ));
            token_server = Some(server);
        }
        if let Access::Basic(user, password) = access {
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
        let mut registry = LocalRegistry {
            process,
            port,
            folder,
            token_server,
            marker,
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

    /// Waits until this registry answers (one carrying its marker header: another test's
    /// registry may hold the port when this one failed to bind it).
    fn wait_until_it_answers(&mut self) -> std::io::Result<()> {
        let (port, marker) = (self.port, &self.marker);
        packhost::testing::wait_until_serving(&mut self.process, "docker-registry", port, || {
            answers(port, marker)
        })
    }
}

/// Whether `GET /v2/` on `port` gets an HTTP answer (200, or 401 behind authentication)
/// carrying the marker header with `marker`.
fn answers(port: u16, marker: &str) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream
        .write_all(b"GET /v2/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    // The status line and headers, at most 16 KiB of them.
    let mut head = Vec::new();
    let mut chunk = [0u8; 2048];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") && head.len() < 16 << 10 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(read) => head.extend_from_slice(&chunk[..read]),
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    let marked = format!("\r\n{MARKER_HEADER}: {marker}\r\n").to_ascii_lowercase();
    matches!(status, "200" | "401") && head.contains(&marked)
}

/// The header each test registry answers with, its value the registry's own folder.
const MARKER_HEADER: &str = "X-Packhost-Registry";

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.stop();
        if let Some(server) = self.token_server.take() {
            server.stop();
        }
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

const TOKEN_SERVICE: &str = "packhost-test-registry";
const TOKEN_ISSUER: &str = "packhost-test-tokens";

/// The token server of a registry with token authentication: one thread answering
/// `GET /token?service=…&scope=…` on a loopback port.
struct TokenServer {
    port: u16,
    stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl TokenServer {
    /// Makes the signing key and certificate in `folder` (`token.key`, `token.pem`) and starts
    /// answering.
    fn start(folder: &Path, user: &str, password: &str) -> std::io::Result<TokenServer> {
        let key = folder.join("token.key");
        let cert = folder.join("token.pem");
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=packhost-test-tokens", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()?;
        if !made.success() || !der.status.success() {
            return Err(std::io::Error::other(
                "openssl could not make the token certificate",
            ));
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stopping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let issuer = TokenIssuer {
            key,
            certificate: der.stdout,
            credentials: format!("{user}:{password}"),
        };
        let flag = stopping.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = issuer.answer(stream);
                }
            }
        });
        Ok(TokenServer {
            port,
            stopping,
            thread,
        })
    }

    fn stop(self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        let _ = self.thread.join();
    }
}

/// What signs tokens, and for whom.
struct TokenIssuer {
    key: PathBuf,
    /// The certificate, DER, for the token's `x5c` header.
    certificate: Vec<u8>,
    /// `user:password`, as basic authentication carries it.
    credentials: String,
}

impl TokenIssuer {
    /// Reads one request and answers it: 401 without the right basic credentials, else a
    /// token for every scope asked.
    fn answer(&self, mut stream: std::net::TcpStream) -> std::io::Result<()> {
        use base64::Engine as _;
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
            if stream.read(&mut byte)? == 0 {
                break;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        let expected = format!(
            "basic {}",
            base64::engine::general_purpose::STANDARD.encode(&self.credentials)
        );
        let authorized = head.lines().any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.eq_ignore_ascii_case("authorization")
                    && value.trim().eq_ignore_ascii_case(&expected)
            })
        });
        if !authorized {
            return stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
        let target = head.split_whitespace().nth(1).unwrap_or_default();
        let query = target.split_once('?').map_or("", |(_, query)| query);
        let access: Vec<serde_json::Value> = query
            .split('&')
            .filter_map(|pair| pair.strip_prefix("scope="))
            .map(percent_decode)
            .filter_map(|scope| {
                // type:name:actions, and a name may hold ':' only in a port, never here.
                let (kind, rest) = scope.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some(serde_json::json!({
                    "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()
                }))
            })
            .collect();
        let token = self.sign(&access)?;
        let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300})
            .to_string();
        stream.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    }

    /// A JWT (RS256, the certificate in `x5c`) granting `access`, signed by `openssl`.
    fn sign(&self, access: &[serde_json::Value]) -> std::io::Result<String> {
        use base64::Engine as _;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let header = serde_json::json!({
            "typ": "JWT", "alg": "RS256",
            "x5c": [base64::engine::general_purpose::STANDARD.encode(&self.certificate)],
        });
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER, "sub": "publisher", "aud": TOKEN_SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()),
            "access": access,
        });
        let signed = format!(
            "{}.{}",
            url.encode(header.to_string()),
            url.encode(claims.to_string())
        );
        let mut openssl = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        openssl
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?
            .write_all(signed.as_bytes())?;
        let signature = openssl.wait_with_output()?;
        if !signature.status.success() {
            return Err(std::io::Error::other("openssl could not sign the token"));
        }
        Ok(format!("{signed}.{}", url.encode(signature.stdout)))
    }
}

/// `%XX` and `+` in a query value, decoded.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| bytes.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match (escaped, bytes[at]) {
            (Some(byte), _) => {
                out.push(byte);
                at += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                at += 1;
            }
            (None, other) => {
                out.push(other);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
