//! Who is calling: API tokens to tenants, the tenant written into each call's `context`,
//! and each tenant's limits (calls at once, calls per second).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{RunnerConfig, TenantConfig, ANONYMOUS};

/// A caller the runner knows, with its limits.
pub(crate) struct Tenant {
    /// The name calls carry as `context.tenant`; empty for an open runner, whose callers
    /// write their own context.
    pub name: String,
    max_concurrent: u32,
    slots: Arc<Semaphore>,
    bucket: Option<Mutex<Bucket>>,
}

/// A token bucket: `rate` calls a second on average, up to `burst` at once. (A dozen lines,
/// so not worth a rate-limiting crate and its dependencies.)
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Tenant {
    fn new(config: &TenantConfig) -> Tenant {
        let bucket = config.requests_per_second.map(|rate| {
            let burst = f64::from(config.burst.unwrap_or_else(|| rate.ceil().max(1.0) as u32));
            Mutex::new(Bucket {
                rate,
                burst,
                tokens: burst,
                refilled: Instant::now(),
            })
        });
        Tenant {
            name: config.name.clone(),
            max_concurrent: config.max_concurrent,
            slots: Arc::new(Semaphore::new(config.max_concurrent as usize)),
            bucket,
        }
    }

    fn open() -> Tenant {
        Tenant {
            name: String::new(),
            max_concurrent: u32::MAX,
            slots: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            bucket: None,
        }
    }

    /// Admits one call: a slot of `max_concurrent`, held until the permit drops, and a
    /// token of the rate. Refusals say which limit, for a `quota_exceeded` answer.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, String> {
        // The slot first: a call refused for concurrency must not spend a token of the rate.
        let slot = Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            format!(
                "tenant {:?} already has {} calls running (max_concurrent)",
                self.name, self.max_concurrent
            )
        })?;
        if let Some(bucket) = &self.bucket {
            let mut bucket = bucket
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if !bucket.take() {
                return Err(format!(
                    "tenant {:?} is over its rate of {} calls a second",
                    self.name, bucket.rate
                ));
            }
        }
        Ok(slot)
    }

    /// The context a call runs with: for a tenant, the caller's context object (or none)
    /// with `tenant` set to this tenant, whatever the caller wrote there; for an open
    /// runner, the caller's context unchanged.
    pub fn context_for(&self, context: serde_json::Value) -> Result<serde_json::Value, String> {
        if self.name.is_empty() {
            return Ok(context);
        }
        let mut object = match context {
            serde_json::Value::Null => serde_json::Map::new(),
            serde_json::Value::Object(object) => object,
            _ => return Err("context must be a JSON object (or absent)".to_string()),
        };
        object.insert("tenant".into(), self.name.clone().into());
        Ok(object.into())
    }
}

/// Every tenant of a runner, by token.
pub(crate) struct Tenants {
    by_token: Vec<(Vec<u8>, Arc<Tenant>)>,
    /// Who a call without a token is: everyone on an open runner, `anonymous` when
    /// admitted, else nobody.
    without_token: Option<Arc<Tenant>>,
}

impl Tenants {
    pub fn new(config: &RunnerConfig) -> Tenants {
        let by_token: Vec<_> = config
            .tenants
            .iter()
            .map(|tenant| {
                let token = tenant.token.clone().unwrap_or_default().into_bytes();
                (token, Arc::new(Tenant::new(tenant)))
            })
            .collect();
        let without_token = if by_token.is_empty() {
            Some(Arc::new(Tenant::open()))
        } else if config.allow_anonymous {
            Some(Arc::new(Tenant::new(&TenantConfig::named(ANONYMOUS))))
        } else {
            None
        };
        Tenants {
            by_token,
            without_token,
        }
    }

    /// The tenant an `Authorization` header names, or why there is none.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Arc<Tenant>, String> {
        let Some(header) = authorization else {
            return self.without_token.clone().ok_or_else(|| {
                "this runner needs an API token: Authorization: Bearer TOKEN".to_string()
            });
        };
        let token = header
            .strip_prefix(b"Bearer ")
            .ok_or_else(|| "the Authorization header must be Bearer TOKEN".to_string())?;
        // Every known token is compared, in constant time, so the answer's timing tells
        // nothing about how much of a guess was right.
        let mut found = None;
        for (known, tenant) in &self.by_token {
            if constant_time_eq(known, token) {
                found = Some(Arc::clone(tenant));
            }
        }
        found.ok_or_else(|| "unknown API token".to_string())
    }
}

/// Whether two tokens are equal, taking as long whatever their common prefix.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> RunnerConfig {
        RunnerConfig::from_json(json).unwrap().finish(None).unwrap()
    }

    #[test]
    fn a_tenant_cannot_name_another_tenant_in_its_context() {
        let tenants = Tenants::new(&config(
            r#"{"tenants": [{"name": "acme", "token": "0123456789abcdef"}]}"#,
        ));
        let acme = tenants
            .authenticate(Some(b"Bearer 0123456789abcdef"))
            .unwrap();
        let context = acme
            .context_for(serde_json::json!({"tenant": "beta", "request": 7}))
            .unwrap();
        assert_eq!(context, serde_json::json!({"tenant": "acme", "request": 7}));
        assert!(tenants.authenticate(None).is_err());
        assert!(tenants
            .authenticate(Some(b"Bearer 0123456789abcdeX"))
            .is_err());
        assert!(acme.context_for(serde_json::json!("beta")).is_err());
    }

    #[test]
    fn limits_refuse_what_is_over_them() {
        let tenants = Tenants::new(&config(
            r#"{"tenants": [{"name": "acme", "token": "0123456789abcdef",
                 "max_concurrent": 1, "requests_per_second": 0.001, "burst": 2}]}"#,
        ));
        let acme = tenants
            .authenticate(Some(b"Bearer 0123456789abcdef"))
            .unwrap();
        let held = acme.admit().unwrap();
        assert!(acme.admit().unwrap_err().contains("max_concurrent"));
        drop(held);
        // The refusal for concurrency spent no token: one of the burst of two is left.
        drop(acme.admit().unwrap());
        assert!(acme.admit().unwrap_err().contains("rate"));
    }
}
