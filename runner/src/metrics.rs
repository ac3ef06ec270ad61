//! What `/metrics` reports, in the Prometheus (OpenMetrics) text format: calls by tenant,
//! pack, action and result code, their latency, the fuel they burnt, calls in flight, and
//! how full the core's pool of instances is.
//!
//! Label values come only from the runner's own configuration (tenant names, served packs
//! and their manifests' actions), never from what a caller wrote, so a caller cannot grow
//! the series without bound.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Whom a call was for and what it ran.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub tenant: String,
    pub pack: String,
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    tenant: String,
    pack: String,
    action: String,
    /// `ok`, or the error code.
    code: String,
}

type LatencyFamily = Family<CallLabels, Histogram, fn() -> Histogram>;

pub(crate) struct Metrics {
    registry: Registry,
    calls: Family<ResultLabels, Counter>,
    latency: LatencyFamily,
    fuel: Family<CallLabels, Counter>,
    in_flight: Gauge,
    pool_slots: Gauge,
    pool_in_use: Gauge,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 13 s, doubling.
    Histogram::new(exponential_buckets(0.00005, 2.0, 19))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("packhost_runner");
        let calls = Family::<ResultLabels, Counter>::default();
        let latency = LatencyFamily::new_with_constructor(latency_histogram);
        let fuel = Family::<CallLabels, Counter>::default();
        let in_flight = Gauge::default();
        registry.register(
            "calls",
            "Calls answered, by tenant, pack, action and result code (ok or the error code)",
            calls.clone(),
        );
        registry.register(
            "call_duration_seconds",
            "Time from a call's arrival to its answer, in seconds",
            latency.clone(),
        );
        registry.register(
            "fuel_consumed",
            "Fuel the calls burnt (about one unit per WebAssembly instruction)",
            fuel.clone(),
        );
        registry.register("calls_in_flight", "Calls running now", in_flight.clone());
        let pool_slots = Gauge::default();
        let pool_in_use = Gauge::default();
        registry.register(
            "pooled_instance_slots",
            "Instances the pool holds at once (PACKHOST_POOLED_INSTANCES; 0: no pool, or none needed yet)",
            pool_slots.clone(),
        );
        registry.register(
            "pooled_instances_in_use",
            "Instances in the pool now; beyond its slots, instances are made on their own",
            pool_in_use.clone(),
        );
        Metrics {
            registry,
            calls,
            latency,
            fuel,
            in_flight,
            pool_slots,
            pool_in_use,
        }
    }

    /// Counts one answered call.
    pub fn record(&self, labels: CallLabels, code: &str, seconds: f64, fuel: u64) {
        self.latency.get_or_create(&labels).observe(seconds);
        if fuel > 0 {
            self.fuel.get_or_create(&labels).inc_by(fuel);
        }
        let CallLabels {
            tenant,
            pack,
            action,
        } = labels;
        self.calls
            .get_or_create(&ResultLabels {
                tenant,
                pack,
                action,
                code: code.to_string(),
            })
            .inc();
    }

    /// Calls running now, for the gauge.
    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    /// The text `/metrics` answers.
    pub fn render(&self) -> String {
        let pool = packhost::instance_pool();
        self.pool_slots.set(saturating_i64(pool.slots));
        self.pool_in_use.set(saturating_i64(pool.in_use));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// A count as a gauge's value.
fn saturating_i64(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
