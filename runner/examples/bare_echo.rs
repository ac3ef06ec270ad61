//! The runner benchmark's anchor: the same HTTP stack as `packhost serve` (axum on tokio's
//! multi-thread runtime), answering `POST /echo` with the request body and nothing else, so
//! `make bench` can show what packhost adds on top of serving HTTP.
//!
//! `cargo run --release -p packhost-runner --example bare_echo -- 127.0.0.1:PORT`

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;

fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_string());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&address).await?;
        eprintln!("bare_echo: listening on http://{}", listener.local_addr()?);
        let app = Router::new().route("/echo", post(|body: Bytes| async move { body }));
        axum::serve(listener, app).await
    })
}
