//! `weft-bootstrap`: run the bootstrap and name server.

use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

/// Weft's self-hostable bootstrap and name server.
#[derive(Debug, Parser)]
#[command(name = "weft-bootstrap", version)]
struct Args {
    /// HTTP listen address.
    #[arg(long, default_value = "0.0.0.0:8470")]
    listen: SocketAddr,
    /// Where the database and the server key live.
    #[arg(long, default_value = "weft-bootstrap-data")]
    data_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args = Args::parse();
    let keys = bootstrap_server::keyfile::load_or_create(&args.data_dir).context("server key")?;
    let pool = bootstrap_server::db::open(&args.data_dir).await.context("database")?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listen on {}", args.listen))?;
    tracing::info!(
        "weft-bootstrap {} serving on {} (key {})",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr()?,
        keys.peer_id()
    );
    println!(
        "{}",
        serde_json::json!({"event": "ready", "listen": listener.local_addr()?.to_string(), "public_key": keys.peer_id().to_string()})
    );
    let state = bootstrap_server::AppState {
        pool,
        keys: Arc::new(keys),
        quotas: Default::default(),
        clock: bootstrap_server::system_clock(),
        writes: Default::default(),
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    bootstrap_server::run(listener, state, shutdown).await?;
    Ok(())
}
