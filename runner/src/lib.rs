//! packhost's runner service (`packhost serve`): the packs of a configuration behind an
//! HTTP API, so an application can run third-party code without loading it.
//!
//! - `POST /v1/execute` runs one action of one pack: `{"pack", "action", "input" |
//!   "input_base64", "context"}` in, `{"output" | "output_base64", "usage", "logs",
//!   "audit"}` out, or `{"error": {"code", "message"}, ...}` with an HTTP status that fits
//!   the code ([`status_of`]).
//! - `GET /v1/packs` lists what is served, with each action's schemas; `POST
//!   /v1/packs/reload` (admin token) loads the packs again and swaps in what changed, as
//!   `reload_interval_ms` does on its own.
//! - `POST /v1/flows/NAME/execute` runs a flow of the configuration's `flows` over the
//!   served packs: `{"input", "context"}` in, `{"output", "steps", "usage"}` out, or the
//!   failing step's error with `error.step`; `GET /v1/flows` lists them.
//! - `POST /mcp`: the actions as Model Context Protocol tools (`mcp.rs`, which also serves
//!   them over stdio for `packhost mcp`).
//! - `GET /healthz`, `GET /readyz` (503 while draining) and `GET /metrics` (Prometheus).
//!
//! The runner is its own crate so that embedding packhost never builds an HTTP server: it
//! adds tokio's multi-thread runtime, axum and a Prometheus client to the core.

mod catalogue;
mod config;
mod execute;
mod mcp;
mod metrics;
mod tenants;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use packhost::{Error, ErrorKind, Result};

pub use config::{
    RunnerConfig, TenantConfig, ADMIN_TOKEN_ENV, ANONYMOUS, RUNNER_ISOLATION, TOKENS_ENV,
};
pub use execute::{status_of, RUNNER_ERROR_CODES};
pub use mcp::{serve_stdio as serve_mcp_stdio, PROTOCOL_VERSIONS as MCP_PROTOCOL_VERSIONS};

use catalogue::Catalogue;
use metrics::Metrics;
use tenants::Tenants;

/// How long the runner waits for connections to close once its calls have drained.
const CLOSE_CONNECTIONS_WITHIN: Duration = Duration::from_secs(5);

/// What every request handler shares.
struct Shared {
    /// Behind a lock so that a new set of packs can replace it while calls run on the old.
    catalogue: RwLock<Arc<Catalogue>>,
    tenants: Tenants,
    metrics: Metrics,
    /// Set as a drain starts: `/readyz` answers 503 so a balancer stops sending calls here.
    draining: AtomicBool,
    /// Set once the drain's grace (`drain_grace_ms`) is over: new calls answer 503 too.
    refusing_calls: AtomicBool,
    /// Calls admitted and not yet finished (their pack may still run after the client left).
    in_flight: AtomicUsize,
    /// Woken when `in_flight` drops to zero.
    idle: tokio::sync::Notify,
    /// What the packs are loaded from (for reloads), which web origins may call, the
    /// request and drain bounds.
    config: RunnerConfig,
    /// The runner listens on a loopback address: only loopback `Host` names are answered.
    loopback_only: bool,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Calls running in place on an async worker, and how many may (`execute::InPlace`).
    in_place: AtomicUsize,
    in_place_most: std::sync::OnceLock<usize>,
}

impl Shared {
    fn catalogue(&self) -> Arc<Catalogue> {
        Arc::clone(
            &self
                .catalogue
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// Loads the packs again and swaps the new set in at once: calls already running finish
    /// on the packs they started with, every later call gets the new set. A pack named on
    /// its own that no longer loads fails the reload and leaves the old set in place (one of
    /// a folder keeps its previous version). Answers which packs are served now and whether
    /// anything changed.
    async fn reload(self: &Arc<Self>) -> Result<serde_json::Value> {
        let _one_at_a_time = self.reloading.lock().await;
        let previous = self.catalogue();
        let shared = Arc::clone(self);
        let old = Arc::clone(&previous);
        let loaded =
            tokio::task::spawn_blocking(move || Catalogue::reload(&shared.config, Some(&old)))
                .await
                .map_err(|_| Error::new(ErrorKind::Internal, "the reload panicked"))??;
        let before = previous.versions();
        let after = loaded.versions();
        let changed = !previous.same_as(&loaded);
        if changed {
            *self
                .catalogue
                .write()
                .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(loaded);
            tracing::info!(?before, ?after, "packs swapped");
        }
        Ok(serde_json::json!({ "changed": changed, "packs": after }))
    }

    /// Waits until no call runs, or the drain timeout passes.
    async fn drained(&self) {
        let all_finished = async {
            loop {
                // Registered before the check, so a call finishing in between still wakes it.
                let finished = self.idle.notified();
                if self.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                finished.await;
            }
        };
        let drain_timeout = Duration::from_millis(self.config.drain_timeout_ms);
        if tokio::time::timeout(drain_timeout, all_finished)
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.in_flight.load(Ordering::SeqCst),
                "drain timeout passed with calls still running; stopping anyway"
            );
        }
    }
}

/// A runner ready to serve: its packs loaded, its tenants known.
pub struct Runner {
    shared: Arc<Shared>,
}

impl Runner {
    /// Loads every pack the configuration names (pulling `oci://` references into the
    /// local store the first time). Blocking: call it before entering an async runtime or
    /// from a blocking task.
    ///
    /// # Errors
    /// `invalid_options` for a configuration that does not hold together; the first pack
    /// that does not load, with its error code and its path in the message.
    pub fn new(config: RunnerConfig) -> Result<Runner> {
        let config = config.finish(None)?;
        let loopback_only = config.listen_address()?.ip().is_loopback();
        let catalogue = Catalogue::load(&config)?;
        Ok(Runner {
            shared: Arc::new(Shared {
                catalogue: RwLock::new(Arc::new(catalogue)),
                tenants: Tenants::new(&config),
                metrics: Metrics::new(),
                draining: AtomicBool::new(false),
                refusing_calls: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                idle: tokio::sync::Notify::new(),
                config,
                loopback_only,
                reloading: tokio::sync::Mutex::new(()),
                in_place: AtomicUsize::new(0),
                in_place_most: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The HTTP routes, for a host that serves them on its own listener.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/execute", post(execute::execute))
            .route("/v1/packs", get(execute::list_packs))
            .route("/v1/packs/reload", post(execute::reload))
            .route("/v1/flows", get(execute::list_flows))
            .route("/v1/flows/{name}/execute", post(execute::execute_flow))
            .route("/healthz", get(execute::healthz))
            .route("/readyz", get(execute::readyz))
            .route("/metrics", get(execute::metrics))
            .route("/mcp", post(mcp::http))
            .with_state(Arc::clone(&self.shared))
    }

    /// Serves on `listener` until `stop` completes, then drains: `/readyz` answers 503, new
    /// calls are still served for `drain_grace_ms` and answer 503 after it, calls in flight
    /// finish (up to `drain_timeout_ms`), and the runner stops.
    ///
    /// # Errors
    /// `io` when the listener fails.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        if let Some(every) = shared.config.reload_interval_ms {
            tokio::spawn(reload_every(
                Arc::clone(&shared),
                Duration::from_millis(every),
            ));
        }
        let (closing, closed) = tokio::sync::oneshot::channel::<()>();
        let drain = async move {
            stop.await;
            shared.draining.store(true, Ordering::SeqCst);
            let grace = Duration::from_millis(shared.config.drain_grace_ms);
            if !grace.is_zero() {
                tracing::info!(?grace, "draining: /readyz answers 503, calls still served");
                tokio::time::sleep(grace).await;
            }
            shared.refusing_calls.store(true, Ordering::SeqCst);
            tracing::info!("draining: new calls get 503");
            shared.drained().await;
            let _ = closing.send(());
        };
        let server = axum::serve(listener, self.router()).with_graceful_shutdown(drain);
        // Connections still open once the calls drained (a client that never finishes its
        // request) get a few seconds, not forever.
        let deadline = async {
            if closed.await.is_ok() {
                tokio::time::sleep(CLOSE_CONNECTIONS_WITHIN).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            served = server => served.map_err(|err| Error::new(ErrorKind::Io, format!("serving: {err}"))),
            () = deadline => Ok(()),
        }
    }
}

/// Runs a runner in the foreground until SIGTERM or SIGINT, then drains it. Prints the
/// address it listens on to stderr once it does.
///
/// # Errors
/// As [`Runner::new`], and `io` when the address cannot be bound.
pub fn run(config: RunnerConfig) -> Result<()> {
    let address = config.listen_address()?;
    let runner = Runner::new(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| Error::new(ErrorKind::Io, format!("starting the runtime: {err}")))?;
    runtime.block_on(async move {
        let listener = bind(address).await?;
        announce(&listener);
        runner.serve(listener, termination()).await
    })
}

/// A runner serving on a thread of its own: for tests and for hosts that embed the runner.
/// Dropping it drains it.
pub struct RunningRunner {
    address: SocketAddr,
    stop: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl RunningRunner {
    /// Loads the packs, binds the configured address (port 0 picks a free one) and serves
    /// in the background.
    ///
    /// # Errors
    /// As [`run`].
    pub fn start(config: RunnerConfig) -> Result<RunningRunner> {
        let address = config.listen_address()?;
        let runner = Runner::new(config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|err| Error::new(ErrorKind::Io, format!("starting the runtime: {err}")))?;
        let listener = runtime.block_on(bind(address))?;
        let address = listener
            .local_addr()
            .map_err(|err| Error::new(ErrorKind::Io, format!("listening: {err}")))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("packhost-runner".into())
            .spawn(move || {
                runtime.block_on(runner.serve(listener, async {
                    let _ = stopped.await;
                }))
            })
            .map_err(|err| Error::new(ErrorKind::Io, format!("starting the runner: {err}")))?;
        Ok(RunningRunner {
            address,
            stop: std::sync::Mutex::new(Some(stop)),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Starts a drain without waiting for it: as SIGTERM does to `packhost serve`.
    pub fn begin_drain(&self) {
        let stop = self
            .stop
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
    }

    /// Drains the runner and waits until it has stopped.
    ///
    /// # Errors
    /// `io` when serving failed; `internal` when the runner's thread panicked.
    pub fn stop(mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        self.begin_drain();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(Error::new(ErrorKind::Internal, "the runner panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for RunningRunner {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Reloads the packs every `every` until the runner drains; a failed reload keeps the
/// packs being served and is logged.
async fn reload_every(shared: Arc<Shared>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if shared.draining.load(Ordering::SeqCst) {
            return;
        }
        if let Err(err) = shared.reload().await {
            tracing::warn!(
                code = err.code(),
                "reload failed, still serving the old packs: {}",
                err.message()
            );
        }
    }
}

async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|err| Error::new(ErrorKind::Io, format!("listening on {address}: {err}")))
}

fn announce(listener: &tokio::net::TcpListener) {
    if let Ok(address) = listener.local_addr() {
        eprintln!("packhost serve: listening on http://{address}");
        tracing::info!(%address, "listening");
    }
}

/// Completes on SIGTERM (what a supervisor or a rolling restart sends) or SIGINT.
async fn termination() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM; only SIGINT drains");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
