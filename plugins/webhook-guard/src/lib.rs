//! The sample pack for packhost's capabilities: a webhook guard. Each delivery is checked
//! against what the tenant's earlier calls left in key-value storage (was this event seen,
//! how many arrived this minute), and one that passes is forwarded with HTTP to the
//! endpoint in the pack's config, when there is one, authenticated with a secret.

use std::time::Duration;

use packhost_pdk::extism_pdk::{http, HttpRequest};
use packhost_pdk::kv;
use packhost_pdk::prelude::*;

/// One webhook delivery.
#[derive(Deserialize, JsonSchema)]
struct Delivery {
    /// The sender's event id: a repeated id is a retry of a delivery already handled.
    id: String,
    /// When it was sent, in seconds since the Unix epoch: it picks the rate window.
    timestamp: u64,
    /// The event itself, forwarded unchanged.
    #[serde(default)]
    payload: Value,
}

/// What became of a delivery.
#[derive(Serialize, JsonSchema)]
struct Verdict {
    /// `accepted`, `duplicate` or `rate_limited`.
    status: &'static str,
    /// Deliveries counted in this minute so far, this one included.
    in_window: u64,
    /// The endpoint's HTTP status, when the delivery was forwarded.
    #[serde(skip_serializing_if = "Option::is_none")]
    forwarded: Option<u16>,
}

/// How long an event id is remembered: senders retry for a day at most.
const REMEMBER_IDS: Duration = Duration::from_secs(24 * 60 * 60);

/// Deliveries per tenant per minute unless config `per_minute` says otherwise.
const DEFAULT_PER_MINUTE: u64 = 60;

/// Checks one delivery: `duplicate` when its id was seen in the last day, `rate_limited`
/// past the tenant's deliveries per minute (config `per_minute`, default 60), else
/// `accepted`, forwarded to config `endpoint` when set, with the secret `endpoint_token` as
/// its bearer token.
#[action]
fn deliver(delivery: Delivery) -> Result<Verdict, Error> {
    let seen_key = format!("seen/{}", delivery.id);
    // Compare-and-set against "absent": of two concurrent retries, exactly one gets in.
    let first = kv::compare_and_set(&seen_key, None, Some(b"1"), Some(REMEMBER_IDS))?;
    let window_key = format!("window/{}", delivery.timestamp / 60);
    if !first {
        let in_window = read_count(kv::get(&window_key)?.as_deref());
        return Ok(Verdict {
            status: "duplicate",
            in_window,
            forwarded: None,
        });
    }
    let limit = packhost_pdk::config("per_minute")
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_PER_MINUTE);
    let counted = kv::update(&window_key, |old| {
        Some((read_count(old) + 1).to_string().into_bytes())
    })?;
    let in_window = read_count(counted.as_deref());
    if in_window > limit {
        return Ok(Verdict {
            status: "rate_limited",
            in_window,
            forwarded: None,
        });
    }
    let forwarded = match packhost_pdk::config("endpoint") {
        Some(endpoint) => {
            let api_key = packhost_pdk::secret("endpoint_token")?;
            let request = HttpRequest::new(&endpoint)
                .with_method("POST")
                .with_header("content-type", "application/json")
                .with_header("authorization", format!("Bearer {api_key}"))
                .with_header("x-event-id", &delivery.id);
            let body = serde_json::to_vec(&delivery.payload)?;
            Some(http::request::<Vec<u8>>(&request, Some(body))?.status_code())
        }
        None => None,
    };
    Ok(Verdict {
        status: "accepted",
        in_window,
        forwarded,
    })
}

fn read_count(bytes: Option<&[u8]>) -> u64 {
    bytes
        .and_then(|bytes| std::str::from_utf8(bytes).ok()?.parse().ok())
        .unwrap_or(0)
}

packhost_pdk::pack! {
    name: "webhook_guard",
    actions: [deliver],
    http_hosts: ["localhost", "*.example.com"],
    config: ["per_minute", "endpoint"],
    kv: true,
    secrets: ["endpoint_token"],
}
