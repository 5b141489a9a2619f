//! `weft-bootstrap`: run the bootstrap, name and signaling server, or manage its trusted nodes.

use anyhow::{bail, Context};
use bootstrap_server::api::StunInfo;
use bootstrap_server::ratelimit::RateLimit;
use bootstrap_server::stun::{ServerAddrs, StunServer};
use bootstrap_server::{db, keyfile, AppState, ServerConfig};
use clap::{Args, Parser, Subcommand};
use node_core::PeerId;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

/// Weft's self-hostable bootstrap, name and signaling server.
///
/// Nodes announce themselves here, find each other, learn their NAT behaviour from the STUN
/// responder, claim human names, exchange signaling and, as a last resort, relay. Everything it
/// says is signed with its key (`<data-dir>/server.key`), which nodes pin.
#[derive(Debug, Parser)]
#[command(name = "weft-bootstrap", version)]
struct Cli {
    /// Where the database and the server key live.
    #[arg(long, default_value = "weft-bootstrap-data", global = true)]
    data_dir: PathBuf,
    /// The database (`sqlite://PATH`); default `<data-dir>/weft-bootstrap.db`.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (what `weft-bootstrap` alone does).
    Serve,
    /// Manage the trusted nodes (works while the server runs).
    Trust {
        #[command(subcommand)]
        action: TrustAction,
    },
}

#[derive(Debug, Subcommand)]
enum TrustAction {
    /// Trust a node.
    Add {
        /// The node's PeerId.
        peer_id: PeerId,
        /// A note for the operator (who this is).
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Stop trusting a node.
    Remove {
        /// The node's PeerId.
        peer_id: PeerId,
    },
    /// List the trusted nodes.
    List,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// HTTP listen address (`[::]:8470` for IPv4 and IPv6).
    #[arg(long, default_value = "0.0.0.0:8470")]
    listen: SocketAddr,
    /// The static web page to serve at `/` (the built `web/` folder).
    #[arg(long)]
    web_dir: Option<PathBuf>,
    /// STUN responder UDP port (0 picks a free one).
    #[arg(long, default_value_t = 3478)]
    stun_port: u16,
    /// The alternate STUN port for RFC 5780 tests (default: the STUN port + 1).
    #[arg(long)]
    stun_alt_port: Option<u16>,
    /// The STUN responder's address (required with --stun-alt-ip; default all addresses).
    #[arg(long)]
    stun_ip: Option<IpAddr>,
    /// A second address of this host, for full RFC 5780 (change-IP tests, OTHER-ADDRESS).
    #[arg(long, requires = "stun_ip")]
    stun_alt_ip: Option<IpAddr>,
    /// Run without the STUN responder.
    #[arg(long)]
    no_stun: bool,
    /// Behind a reverse proxy: take client addresses from X-Forwarded-For (never set this when
    /// clients reach the server directly: they could forge the header).
    #[arg(long)]
    behind_proxy: bool,
    /// API requests per second per client address (0 turns the limit off).
    #[arg(long, default_value_t = 20)]
    rate_limit: u32,
    /// API requests per client address at once.
    #[arg(long, default_value_t = 60)]
    rate_burst: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,stun_types=error"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    let pool = match &cli.database_url {
        Some(url) => db::open_url(url).await,
        None => db::open(&cli.data_dir).await,
    }
    .context("opening the database")?;
    match cli.command {
        Some(Command::Trust { action }) => trust(&pool, action).await,
        Some(Command::Serve) | None => serve(cli.serve, &cli.data_dir, pool).await,
    }
}

fn now_ms() -> u64 {
    (bootstrap_server::system_clock())()
}

async fn trust(pool: &sqlx::SqlitePool, action: TrustAction) -> anyhow::Result<()> {
    match action {
        TrustAction::Add { peer_id, note } => {
            let added = db::trust_add(pool, &peer_id, &note, now_ms()).await?;
            println!("{} {peer_id}", if added { "trusted" } else { "already trusted:" });
        }
        TrustAction::Remove { peer_id } => {
            if !db::trust_remove(pool, &peer_id).await? {
                bail!("{peer_id} is not trusted");
            }
            println!("no longer trusted: {peer_id}");
        }
        TrustAction::List => {
            for t in db::trust_list(pool).await? {
                println!("{}\t{}", t.peer_id, t.note);
            }
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs, data_dir: &std::path::Path, pool: sqlx::SqlitePool) -> anyhow::Result<()> {
    let keys = keyfile::load_or_create(data_dir).context("server key")?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listen on {}", args.listen))?;
    let stun = if args.no_stun {
        None
    } else {
        let primary_ip = args.stun_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if args.stun_alt_ip.is_some() && primary_ip.is_unspecified() {
            bail!("--stun-alt-ip needs a concrete --stun-ip (responses must leave from the right address)");
        }
        let alt_port =
            args.stun_alt_port.unwrap_or(if args.stun_port == 0 { 0 } else { args.stun_port.wrapping_add(1) });
        let addrs = ServerAddrs {
            primary_ip,
            primary_port: args.stun_port,
            alt_port: Some(alt_port),
            alt_ip: args.stun_alt_ip,
            change_port_without_alt_ip: true,
        };
        Some(StunServer::bind(addrs).await.with_context(|| format!("STUN on UDP port {}", args.stun_port))?)
    };
    let rate_limit = match (NonZeroU32::new(args.rate_limit), NonZeroU32::new(args.rate_burst)) {
        (Some(per_second), Some(burst)) => Some(RateLimit { per_second, burst }),
        (Some(per_second), None) => Some(RateLimit { per_second, burst: per_second }),
        (None, _) => None,
    };
    let stun_info = stun.as_ref().map(|s| {
        let a = s.addrs();
        StunInfo { port: a.primary_port, alt_port: a.alt_port.unwrap_or(a.primary_port), alt_ip: a.alt_ip }
    });
    let config = ServerConfig {
        behind_proxy: args.behind_proxy,
        rate_limit,
        stun: stun_info.clone(),
        web_dir: args.web_dir,
        ..Default::default()
    };
    let state = AppState::new(pool, keys, config, bootstrap_server::system_clock());
    let public_key = state.keys.peer_id();
    let local = listener.local_addr()?;
    tracing::info!("weft-bootstrap {} serving on {local} (key {public_key})", env!("CARGO_PKG_VERSION"));
    let stun_task = stun.map(|s| tokio::spawn(s.serve(state.metrics.clone())));
    println!(
        "{}",
        serde_json::json!({"event": "ready", "listen": local.to_string(), "public_key": public_key.to_string(), "stun": stun_info})
    );
    // Ctrl-C or SIGTERM (systemd, docker stop): finish the requests in flight, then stop.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    bootstrap_server::run(listener, state, shutdown).await?;
    if let Some(t) = stun_task {
        t.abort();
    }
    Ok(())
}
