//! HTTP for packs, the same on both engines: the grant (hosts, ports, private addresses,
//! redirects, requests per call), the request itself over ureq, and its limits (the call's
//! remaining time, the decoded body within what the pack may still hold).
//!
//! Every hop of a request, the first and each redirect, goes through [`GuardedResolver`]:
//! the host must be granted, the port allowed, and every address the name resolves to must
//! be public unless the host opted that name in. ureq connects only to the addresses the
//! resolver returns, so the address that was checked is the one connected to: a DNS answer
//! that changes between check and connect (rebinding) cannot reach a private network.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::audit::{AuditEntry, AuditTrail, Capability};
use crate::error::{Error, ErrorKind, Result};
use crate::hosts::HostPattern;
use crate::options::HttpOptions;

/// What one pack may do over HTTP, fixed at load and shared by its instances.
#[derive(Debug)]
pub(crate) struct HttpGrant {
    rules: Arc<HopRules>,
    max_redirects: u32,
    max_requests_per_call: u32,
    max_response_bytes: Option<u64>,
    response_headers: bool,
}

/// The checks every hop of a request must pass.
#[derive(Debug)]
struct HopRules {
    /// Hosts the pack may reach (the pack's ask ∩ the host's grant).
    hosts: Vec<HostPattern>,
    /// Hosts whose names may resolve to loopback, private or link-local addresses.
    private_hosts: Vec<HostPattern>,
    /// Ports a URL may name (its scheme's default counts when it names none).
    ports: Vec<u16>,
}

/// A response as the ABI hands it to the pack.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    /// The status code.
    pub(crate) status: u16,
    /// The response headers as a JSON object, when the host lets packs read them.
    pub(crate) headers_json: Option<Vec<u8>>,
    /// The decoded body.
    pub(crate) body: Vec<u8>,
}

/// The request a pack sends, as JSON (the Extism PDKs' format).
#[derive(Deserialize)]
struct PackRequest {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

impl HttpGrant {
    /// The grant for `hosts` (already the pack ∩ host intersection) under the host's
    /// HTTP options, which `PackOptions::validate` has checked.
    pub(crate) fn new(hosts: Vec<HostPattern>, options: &HttpOptions) -> Self {
        HttpGrant {
            rules: Arc::new(HopRules {
                hosts,
                private_hosts: options
                    .allow_private_hosts
                    .iter()
                    .filter_map(|pattern| HostPattern::parse(pattern).ok())
                    .collect(),
                ports: options.allowed_ports.clone(),
            }),
            max_redirects: options.max_redirects,
            max_requests_per_call: options.max_requests_per_call,
            max_response_bytes: options.max_response_bytes,
            response_headers: options.response_headers,
        }
    }

    /// Runs the request a pack sent (`request_json`, with `body`) as the `requests_made`-th
    /// of its call, by `deadline`, reading at most `max_body_bytes` of decoded body.
    ///
    /// # Errors
    /// `host_denied` when a grant check refuses it (the message says which), `timeout` when
    /// the call's time runs out, `memory_limit` when the body is larger than the pack may
    /// still hold, `trap` when the pack's request is malformed or the exchange fails.
    pub(crate) fn perform(
        &self,
        requests_made: &mut u32,
        request_json: &[u8],
        body: Vec<u8>,
        deadline: Option<Instant>,
        max_body_bytes: u64,
        audit: &AuditTrail,
    ) -> Result<HttpResponse> {
        let (method, host) = match serde_json::from_slice::<PackRequest>(request_json) {
            Ok(request) => (
                audited_method(request.method.as_deref()),
                url::Url::parse(&request.url)
                    .ok()
                    .and_then(|url| url.host_str().map(str::to_string))
                    .unwrap_or_default(),
            ),
            Err(_) => (String::new(), String::new()),
        };
        let mut entry = AuditEntry::new(Capability::Http, method, host);
        entry.bytes_sent = body.len() as u64;
        let outcome = self.exchange(requests_made, request_json, body, deadline, max_body_bytes);
        if let Ok(response) = &outcome {
            entry.status = Some(response.status);
            entry.bytes_received = response.body.len() as u64;
        }
        audit.record(entry.ended(&outcome));
        outcome
    }

    /// Runs one request; [`HttpGrant::perform`] records it.
    fn exchange(
        &self,
        requests_made: &mut u32,
        request_json: &[u8],
        body: Vec<u8>,
        deadline: Option<Instant>,
        max_body_bytes: u64,
    ) -> Result<HttpResponse> {
        let request: PackRequest = serde_json::from_slice(request_json).map_err(|err| {
            Error::new(
                ErrorKind::Trap,
                format!("http request is not valid JSON: {err}"),
            )
        })?;
        let url = url::Url::parse(&request.url).map_err(|err| {
            Error::new(
                ErrorKind::Trap,
                format!("invalid URL {:?}: {err}", request.url),
            )
        })?;
        let denied = |reason: String| {
            Error::new(
                ErrorKind::HostDenied,
                format!("HTTP request to {url} is not allowed: {reason}"),
            )
        };
        *requests_made = requests_made.saturating_add(1);
        if *requests_made > self.max_requests_per_call {
            return Err(denied(format!(
                "a call may make at most {} requests",
                self.max_requests_per_call
            )));
        }
        // The first hop is checked here too, so a refusal names its reason without a DNS
        // lookup; the resolver repeats the checks for every hop.
        self.rules.check_url(&url).map_err(denied)?;

        let remaining = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timed_out(&url));
                }
                Some(left)
            }
            None => None,
        };
        let config = ureq::Agent::config_builder()
            // Proxies from the environment would be asked to connect for us, past the
            // resolver's address checks.
            .proxy(None)
            .max_redirects(self.max_redirects)
            .http_status_as_error(false)
            .timeout_global(remaining)
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            DefaultConnector::new(),
            GuardedResolver {
                rules: self.rules.clone(),
            },
        );
        let mut builder = ureq::http::Request::builder()
            .method(
                request
                    .method
                    .as_deref()
                    .unwrap_or("GET")
                    .to_uppercase()
                    .as_str(),
            )
            .uri(url.as_str());
        for (name, value) in &request.headers {
            // The Host header would name another site behind the granted host's front end
            // (a shared CDN or load balancer): the URL alone says where a request goes.
            if name.eq_ignore_ascii_case("host") {
                return Err(denied("a pack may not set the Host header".to_string()));
            }
            builder = builder.header(name, value);
        }
        let outgoing = builder
            .body(body)
            .map_err(|err| Error::new(ErrorKind::Trap, format!("invalid http request: {err}")))?;

        let mut response = agent.run(outgoing).map_err(|err| match err {
            ureq::Error::Other(inner) if inner.is::<Refusal>() => denied(inner.to_string()),
            ureq::Error::TooManyRedirects => denied(format!(
                "it redirects more than the {} times allowed",
                self.max_redirects
            )),
            ureq::Error::Timeout(_) => timed_out(&url),
            other => Error::new(
                ErrorKind::Trap,
                format!("HTTP request to {url} failed: {other}"),
            ),
        })?;

        let status = response.status().as_u16();
        let headers_json = self.response_headers.then(|| {
            let headers: BTreeMap<&str, &str> = response
                .headers()
                .iter()
                .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
                .collect();
            serde_json::to_vec(&headers).unwrap_or_default()
        });
        // The cap counts decoded bytes: ureq's own limit counts the bytes on the wire, so a
        // small gzip body could expand without bound in the host.
        let (max_body_bytes, cap_reason) = match self.max_response_bytes {
            Some(cap) if cap < max_body_bytes => (cap, "http.max_response_bytes allows"),
            _ => (max_body_bytes, "the pack may still hold"),
        };
        let mut received = Vec::new();
        let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
        let read_failed = |err: std::io::Error| match ureq::Error::from(err) {
            ureq::Error::Timeout(_) => timed_out(&url),
            other => Error::new(
                ErrorKind::Trap,
                format!("HTTP response from {url} could not be read: {other}"),
            ),
        };
        // Grown a chunk at a time (never doubled), so the host holds at most the cap plus
        // one chunk, however the body was encoded.
        const CHUNK: u64 = 64 << 10;
        loop {
            let wanted = max_body_bytes.saturating_add(1) - received.len() as u64;
            if wanted == 0 {
                break;
            }
            let step = wanted.min(CHUNK) as usize;
            let start = received.len();
            received.reserve_exact(step);
            received.resize(start + step, 0);
            let read = loop {
                match reader.read(&mut received[start..]) {
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            let read = read.map_err(read_failed)?;
            received.truncate(start + read);
            if read == 0 {
                break;
            }
        }
        if received.len() as u64 > max_body_bytes {
            return Err(Error::new(
                ErrorKind::MemoryLimit,
                format!(
                    "HTTP response from {url} is larger than the {max_body_bytes} bytes {cap_reason}"
                ),
            ));
        }
        Ok(HttpResponse {
            status,
            headers_json,
            body: received,
        })
    }
}

fn timed_out(url: &url::Url) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("HTTP request to {url} ran past the call's time limit"),
    )
}

impl HopRules {
    /// Checks a URL's scheme, host and port; the reason when refused.
    fn check_url(&self, url: &url::Url) -> std::result::Result<(), String> {
        let host = url.host_str().unwrap_or_default();
        self.check_hop(url.scheme(), host, url.port())
    }

    /// Checks one hop's scheme, host and port (the scheme's default when `port` is none).
    fn check_hop(
        &self,
        scheme: &str,
        host: &str,
        port: Option<u16>,
    ) -> std::result::Result<(), String> {
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            other => return Err(format!("the scheme {other:?} is not HTTP")),
        };
        let port = port.unwrap_or(default_port);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !self.hosts.iter().any(|pattern| pattern.matches(host)) {
            return Err(format!("the host {host} is not granted"));
        }
        if !self.ports.contains(&port) {
            return Err(format!("the port {port} is not granted"));
        }
        Ok(())
    }

    /// Whether `host` may resolve to non-public addresses.
    fn may_be_private(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.private_hosts
            .iter()
            .any(|pattern| pattern.matches(host))
    }
}

/// A refusal from the resolver, carried through ureq's error back to [`HttpGrant::perform`].
#[derive(Debug)]
struct Refusal(String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// Resolves each hop's host with ureq's own resolver (which honours the call's time), then
/// keeps only the addresses the grant allows.
#[derive(Debug)]
struct GuardedResolver {
    rules: Arc<HopRules>,
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> std::result::Result<ResolvedSocketAddrs, ureq::Error> {
        let refuse = |reason: String| ureq::Error::Other(Box::new(Refusal(reason)));
        // IPv6 literals come bracketed in URIs; patterns and addresses are written without.
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let scheme = uri.scheme_str().unwrap_or_default();
        self.rules
            .check_hop(scheme, host, uri.port_u16())
            .map_err(refuse)?;
        let resolved = DefaultResolver::default().resolve(uri, config, timeout)?;
        if self.rules.may_be_private(host) {
            return Ok(resolved);
        }
        let mut public = self.empty();
        let mut refused = None;
        for address in resolved.iter() {
            match non_public(address.ip()) {
                None => public.push(*address),
                Some(kind) => refused = Some((address, kind)),
            }
        }
        match refused {
            // A name with any non-public address is refused whole: a public address beside a
            // private one is the shape of a rebinding attempt.
            Some((address, kind)) if host == address.ip().to_string() => {
                Err(refuse(format!("{host} is a {kind} address")))
            }
            Some((address, kind)) => Err(refuse(format!(
                "{host} resolves to {}, a {kind} address",
                address.ip()
            ))),
            None if public.is_empty() => Err(ureq::Error::HostNotFound),
            None => Ok(public),
        }
    }
}

/// The kind of a loopback, private, link-local or otherwise non-public address; `None` for
/// a public one. IPv4 addresses carried inside IPv6 (mapped, compatible, NAT64, 6to4) are
/// judged as IPv4, and IPv6 outside global unicast (2000::/3) is never public.
fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (CGNAT)")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a >= 240 {
        Some("reserved")
    } else if a == 192 && b == 0 && c == 0 {
        Some("IETF protocol")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking")
    } else {
        None
    }
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let embedded = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4).or(Some("IPv4-mapped"));
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    match segments {
        // NAT64 (well-known prefix): reaches the IPv4 address it carries.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => non_public_v4(embedded(high, low)),
        // 6to4: likewise.
        [0x2002, high, low, ..] => non_public_v4(embedded(high, low)).or(Some("6to4")),
        [0x2001, 0, ..] => Some("Teredo"),
        [0x2001, 0xdb8, ..] => Some("documentation"),
        [first, ..] if first & 0xfe00 == 0xfc00 => Some("unique-local"),
        [first, ..] if first & 0xffc0 == 0xfe80 => Some("link-local"),
        [first, ..] if first & 0xff00 == 0xff00 => Some("multicast"),
        [first, ..] if first & 0xe000 != 0x2000 => Some("non-global IPv6"),
        _ => None,
    }
}

/// The method an audit entry names: one of HTTP's own, else `OTHER`. A pack chooses the
/// method's text, and the trail must not carry what a pack wants written there.
fn audited_method(method: Option<&str>) -> String {
    const METHODS: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
    ];
    let method = method.unwrap_or("GET").to_ascii_uppercase();
    if METHODS.contains(&method.as_str()) {
        method
    } else {
        "OTHER".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> Option<&'static str> {
        non_public(text.parse().unwrap())
    }

    #[test]
    fn every_non_public_range_is_refused() {
        for (address, expected) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("64:ff9b:1::a00:1", "non-global IPv6"),
            ("::7f00:1", "non-global IPv6"),
            ("2002:7f00:1::", "loopback"),
            ("2002:0808:0808::", "6to4"),
            ("2001:0:4136:e378::1", "Teredo"),
            ("2001:db8::1", "documentation"),
            ("fec0::1", "non-global IPv6"),
            ("198.18.0.1", "benchmarking"),
            ("192.0.0.8", "IETF protocol"),
            ("240.0.0.1", "reserved"),
        ] {
            assert_eq!(kind(address), Some(expected), "{address}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for address in [
            "93.184.215.14",
            "100.128.0.1",
            "2606:4700::6810:85e5",
            "::ffff:8.8.8.8",
        ] {
            match kind(address) {
                None | Some("IPv4-mapped") => {}
                other => panic!("{address} judged {other:?}"),
            }
        }
    }

    fn grant(hosts: &[&str], options: &str) -> HttpGrant {
        let options: HttpOptions = serde_json::from_str(options).unwrap();
        HttpGrant::new(
            hosts
                .iter()
                .map(|h| HostPattern::parse(h).unwrap())
                .collect(),
            &options,
        )
    }

    fn refusal(grant: &HttpGrant, url: &str) -> String {
        let request = format!(r#"{{"url": "{url}"}}"#);
        let err = grant
            .perform(
                &mut 0,
                request.as_bytes(),
                Vec::new(),
                None,
                1 << 20,
                &AuditTrail::default(),
            )
            .unwrap_err();
        assert_eq!(err.code(), "host_denied", "{err}");
        err.message().to_string()
    }

    #[test]
    fn refusals_say_why() {
        let grant = grant(&["api.example.com", "127.0.0.1"], "{}");
        assert!(refusal(&grant, "https://evil.example.net/")
            .contains("the host evil.example.net is not granted"));
        assert!(refusal(&grant, "https://api.example.com:8443/")
            .contains("the port 8443 is not granted"));
        assert!(refusal(&grant, "ftp://api.example.com/").contains("is not HTTP"));
        // A granted IP literal is still a loopback address, refused without the opt-in.
        assert!(refusal(&grant, "http://127.0.0.1/").contains("a loopback address"));
    }

    #[test]
    fn a_pack_may_not_choose_the_host_header() {
        let grant = grant(&["api.example.com"], "{}");
        let request =
            br#"{"url": "https://api.example.com/", "headers": {"HOST": "internal.example.org"}}"#;
        let err = grant
            .perform(
                &mut 0,
                request,
                Vec::new(),
                None,
                1 << 20,
                &AuditTrail::default(),
            )
            .unwrap_err();
        assert_eq!(err.code(), "host_denied");
        assert!(err.message().contains("Host header"), "{err}");
    }

    #[test]
    fn requests_per_call_are_capped() {
        let grant = grant(&["api.example.com"], r#"{"max_requests_per_call": 2}"#);
        let mut made = 2;
        let err = grant
            .perform(
                &mut made,
                br#"{"url": "https://api.example.com/"}"#,
                Vec::new(),
                None,
                1,
                &AuditTrail::default(),
            )
            .unwrap_err();
        assert_eq!(err.code(), "host_denied");
        assert!(err.message().contains("at most 2 requests"), "{err}");
    }
}
