//! The runner's configuration: where its packs come from, what they are granted, who may
//! call and how much. Plain serde data, read from a JSON file and the environment.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use packhost::{Error, ErrorKind, PackOptions, Result};
use serde::Deserialize;

/// The environment variable that gives tenants their API tokens, as
/// `tenant=token,tenant=token`: tokens stay out of configuration files. A tenant named here
/// and in the file takes the file's limits and this token.
pub const TOKENS_ENV: &str = "PACKHOST_RUNNER_TOKENS";

/// The environment variable holding the admin token (for `POST /v1/packs/reload`), when the
/// config file does not.
pub const ADMIN_TOKEN_ENV: &str = "PACKHOST_RUNNER_ADMIN_TOKEN";

/// Everything `packhost serve` is told. Unknown fields are refused, so a typo never leaves
/// a limit unset.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunnerConfig {
    /// The address to listen on. Default `127.0.0.1:8080`.
    pub listen: String,
    /// What to serve: `.wasm` files, folders of them (not recursed into) and `oci://`
    /// references, pulled into the local store the first time.
    pub packs: Vec<String>,
    /// Flows to serve at `POST /v1/flows/NAME/execute`: definition files (`.json`, `.yaml`,
    /// `.yml`) and folders of them (not recursed into). Each is checked against the packs
    /// when they load, and read again on every reload.
    pub flows: Vec<String>,
    /// The options every pack is loaded with, as for `Pack.load` in any host, but that
    /// `isolation` defaults to [`RUNNER_ISOLATION`] (`"context"`).
    pub options: serde_json::Value,
    /// Options for the packs of one name, in place of `options` (but for an `isolation`
    /// that only `options` sets).
    pub pack_options: BTreeMap<String, serde_json::Value>,
    /// Who may call. With none, calls need no token and their `context` is passed on as
    /// the caller wrote it (a runner behind an application that authenticates itself).
    pub tenants: Vec<TenantConfig>,
    /// With tenants configured, also accept calls without a token, as tenant `anonymous`
    /// (with the default tenant limits). Default false.
    pub allow_anonymous: bool,
    /// Largest request body, in bytes. Default 16 MiB.
    pub max_request_bytes: usize,
    /// How long a drain (SIGTERM) waits for calls in flight before the runner stops
    /// anyway, in milliseconds. Default 30000.
    pub drain_timeout_ms: u64,
    /// How long a drain keeps serving new calls after `/readyz` starts answering 503, in
    /// milliseconds, so that a balancer checking `/readyz` stops sending calls before any
    /// is refused: set it above the balancer's check interval when the balancer does not
    /// resend a refused call elsewhere. Default 0: calls are refused at once.
    pub drain_grace_ms: u64,
    /// The token `POST /v1/packs/reload` needs (`Authorization: Bearer TOKEN`); may come
    /// from [`ADMIN_TOKEN_ENV`] instead. Default none: only `reload_interval_ms` reloads.
    pub admin_token: Option<String>,
    /// Reload the packs this often, in milliseconds: files read again, `oci://` tags pulled
    /// again, and whatever changed swapped in. Default `null`: only on request.
    pub reload_interval_ms: Option<u64>,
    /// Web origins (`https://app.example`) whose pages may call the runner. Default none:
    /// a request carrying an `Origin` header, which browsers send, is refused.
    pub allowed_origins: Vec<String>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            listen: "127.0.0.1:8080".to_string(),
            packs: Vec::new(),
            flows: Vec::new(),
            options: serde_json::Value::Null,
            pack_options: BTreeMap::new(),
            tenants: Vec::new(),
            allow_anonymous: false,
            max_request_bytes: 16 << 20,
            drain_timeout_ms: 30_000,
            drain_grace_ms: 0,
            admin_token: None,
            reload_interval_ms: None,
            allowed_origins: Vec::new(),
        }
    }
}

/// One tenant: its token and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant's name: what every call it makes carries as `context.tenant`.
    pub name: String,
    /// The API token it sends as `Authorization: Bearer TOKEN`; may come from
    /// [`TOKENS_ENV`] instead.
    #[serde(default)]
    pub token: Option<String>,
    /// Calls it may have running at once; more are refused with `quota_exceeded` (429).
    /// Default 16.
    #[serde(default = "TenantConfig::default_max_concurrent")]
    pub max_concurrent: u32,
    /// Calls it may start per second, on average; more are refused with `quota_exceeded`.
    /// Default `null`: no rate limit.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Calls it may start at once above that rate. Default: one second's worth.
    #[serde(default)]
    pub burst: Option<u32>,
}

impl TenantConfig {
    fn default_max_concurrent() -> u32 {
        16
    }

    /// A tenant with the default limits.
    pub fn named(name: &str) -> Self {
        TenantConfig {
            name: name.to_string(),
            token: None,
            max_concurrent: Self::default_max_concurrent(),
            requests_per_second: None,
            burst: None,
        }
    }
}

impl RunnerConfig {
    /// Reads a configuration file's JSON.
    ///
    /// # Errors
    /// `invalid_options` naming what is wrong.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|err| invalid(format!("runner config: {err}")))
    }

    /// Adds the tokens of [`TOKENS_ENV`] and [`ADMIN_TOKEN_ENV`] (read from the
    /// environment by [`RunnerConfig::finish_from_env`]), then checks the whole: an
    /// address that parses, options that parse, every tenant with a name and a token of
    /// its own, limits that allow a call.
    ///
    /// # Errors
    /// `invalid_options` naming what is wrong; a token is never quoted.
    pub fn finish(mut self, tokens_env: Option<&str>) -> Result<Self> {
        for entry in tokens_env.unwrap_or("").split(',').map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let Some((name, token)) = entry.split_once('=') else {
                return Err(invalid(format!(
                    "{TOKENS_ENV}: entries are tenant=token, separated by commas"
                )));
            };
            let name = name.trim();
            match self.tenants.iter_mut().find(|tenant| tenant.name == name) {
                Some(tenant) => tenant.token = Some(token.trim().to_string()),
                None => {
                    let mut tenant = TenantConfig::named(name);
                    tenant.token = Some(token.trim().to_string());
                    self.tenants.push(tenant);
                }
            }
        }
        self.listen_address()?;
        PackOptions::from_value(self.options.clone())?;
        for (name, options) in &self.pack_options {
            PackOptions::from_value(options.clone())
                .map_err(|err| invalid(format!("pack_options.{name}: {}", err.message())))?;
        }
        let mut tokens = std::collections::BTreeSet::new();
        for tenant in &self.tenants {
            if tenant.name.is_empty() || tenant.name == ANONYMOUS {
                return Err(invalid(format!(
                    "tenants: {:?} is not a tenant name",
                    tenant.name
                )));
            }
            let token = tenant.token.as_deref().unwrap_or("");
            if token.len() < 16 {
                return Err(invalid(format!(
                    "tenant {:?} needs a token of at least 16 characters (in the file or {TOKENS_ENV})",
                    tenant.name
                )));
            }
            if !tokens.insert(token) {
                return Err(invalid(format!(
                    "tenant {:?} shares its token with another tenant",
                    tenant.name
                )));
            }
            tenant_limits_usable(tenant)?;
        }
        if let Some(token) = &self.admin_token {
            if token.len() < 16 || tokens.contains(token.as_str()) {
                return Err(invalid(
                    "admin_token needs at least 16 characters, and no tenant's token",
                ));
            }
        }
        if self.reload_interval_ms == Some(0) {
            return Err(invalid("reload_interval_ms must be at least 1"));
        }
        if self.max_request_bytes == 0 {
            return Err(invalid("max_request_bytes must be at least 1"));
        }
        Ok(self)
    }

    /// [`RunnerConfig::finish`] with the tokens of the process's environment.
    ///
    /// # Errors
    /// As [`RunnerConfig::finish`].
    pub fn finish_from_env(mut self) -> Result<Self> {
        if self.admin_token.is_none() {
            self.admin_token = std::env::var(ADMIN_TOKEN_ENV).ok();
        }
        self.finish(std::env::var(TOKENS_ENV).ok().as_deref())
    }

    /// The address to listen on.
    ///
    /// # Errors
    /// `invalid_options` when it does not parse as `IP:PORT`.
    pub fn listen_address(&self) -> Result<SocketAddr> {
        self.listen
            .parse()
            .map_err(|_| invalid(format!("listen: {:?} is not IP:PORT", self.listen)))
    }

    /// The options every pack is loaded with unless `pack_options` names it.
    pub(crate) fn base_options(&self) -> Result<PackOptions> {
        with_runner_defaults(&self.options, None)
    }

    /// The options the packs named `name` are loaded with: their `pack_options` in place
    /// of `options`, but for an `isolation` only `options` sets, which they keep (an
    /// operator's choice of isolation is never undone by naming a pack).
    pub(crate) fn options_for(&self, name: &str) -> Result<PackOptions> {
        match self.pack_options.get(name) {
            Some(own) => with_runner_defaults(own, self.options.get("isolation")),
            None => self.base_options(),
        }
    }
}

/// The isolation a runner's packs get unless their options choose one: instances are shared
/// only between calls of one tenant (`context.tenant`, which a runner with tenants writes
/// from the caller's token), so no tenant ever sees another's state, and a tenant's calls
/// reuse warm instances instead of paying for a fresh one each (the core's default,
/// `"call"`, tens of microseconds a call).
pub const RUNNER_ISOLATION: &str = "context";

/// `options` (`null` for the defaults) with `isolation` unless they set one: `inherited`
/// (the shared options' choice, for a pack's own options), else [`RUNNER_ISOLATION`].
fn with_runner_defaults(
    options: &serde_json::Value,
    inherited: Option<&serde_json::Value>,
) -> Result<PackOptions> {
    let mut options = match options {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        other => other.clone(),
    };
    if let Some(map) = options.as_object_mut() {
        map.entry("isolation").or_insert_with(|| {
            inherited
                .cloned()
                .unwrap_or_else(|| RUNNER_ISOLATION.into())
        });
    }
    PackOptions::from_value(options)
}

/// The tenant of calls without a token, when `allow_anonymous` admits them.
pub const ANONYMOUS: &str = "anonymous";

fn tenant_limits_usable(tenant: &TenantConfig) -> Result<()> {
    if tenant.max_concurrent == 0 {
        return Err(invalid(format!(
            "tenant {:?}: max_concurrent must be at least 1",
            tenant.name
        )));
    }
    if let Some(rate) = tenant.requests_per_second {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(invalid(format!(
                "tenant {:?}: requests_per_second must be a positive number",
                tenant.name
            )));
        }
    }
    if tenant.burst == Some(0) {
        return Err(invalid(format!(
            "tenant {:?}: burst must be at least 1",
            tenant.name
        )));
    }
    Ok(())
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOptions, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_the_environment_join_the_file_tenants() {
        let config =
            RunnerConfig::from_json(r#"{"tenants": [{"name": "acme", "max_concurrent": 2}]}"#)
                .unwrap()
                .finish(Some("acme=0123456789abcdef, beta=fedcba9876543210"))
                .unwrap();
        assert_eq!(config.tenants.len(), 2);
        assert_eq!(config.tenants[0].max_concurrent, 2);
        assert_eq!(config.tenants[0].token.as_deref(), Some("0123456789abcdef"));
        assert_eq!(config.tenants[1].name, "beta");
    }

    #[test]
    fn weak_shared_or_missing_tokens_are_refused_without_being_quoted() {
        for (file, env) in [
            (r#"{"tenants": [{"name": "acme"}]}"#, None),
            (r#"{}"#, Some("acme=short")),
            (r#"{}"#, Some("a=0123456789abcdef,b=0123456789abcdef")),
        ] {
            let err = RunnerConfig::from_json(file)
                .unwrap()
                .finish(env)
                .unwrap_err();
            assert_eq!(err.code(), "invalid_options");
            assert!(
                !err.message().contains("0123456789abcdef"),
                "{}",
                err.message()
            );
        }
    }

    #[test]
    fn packs_get_context_isolation_unless_the_operator_chose() {
        use packhost::Isolation;
        let isolation_of = |json: &str, name: &str| {
            let config = RunnerConfig::from_json(json).unwrap();
            config.options_for(name).unwrap().isolation
        };
        assert_eq!(isolation_of("{}", "demo"), Isolation::Context);
        assert_eq!(
            isolation_of(r#"{"options": {"isolation": "call"}}"#, "demo"),
            Isolation::Call
        );
        // A pack of its own options keeps the shared choice of isolation...
        let json = r#"{"options": {"isolation": "call"},
                       "pack_options": {"demo": {"allowed_hosts": ["api.example"]}}}"#;
        assert_eq!(isolation_of(json, "demo"), Isolation::Call);
        // ...unless it makes its own.
        let json = r#"{"options": {"isolation": "call"},
                       "pack_options": {"demo": {"isolation": "pack"}}}"#;
        assert_eq!(isolation_of(json, "demo"), Isolation::Pack);
        assert_eq!(
            isolation_of(r#"{"pack_options": {"demo": {}}}"#, "demo"),
            Isolation::Context
        );
    }

    #[test]
    fn typos_and_bad_options_are_refused() {
        assert!(RunnerConfig::from_json(r#"{"tenant": []}"#).is_err());
        let err = RunnerConfig::from_json(r#"{"options": {"limits": {"timeout": 5}}}"#)
            .unwrap()
            .finish(None)
            .unwrap_err();
        assert_eq!(err.code(), "invalid_options");
        let err = RunnerConfig::from_json(r#"{"listen": "localhost"}"#)
            .unwrap()
            .finish(None)
            .unwrap_err();
        assert!(err.message().contains("listen"), "{}", err.message());
    }
}
