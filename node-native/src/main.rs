//! `weft`: run a Weft node from the command line.

mod cli;

use clap::Parser;
use cli::args::{Cli, Commands};
use tracing_subscriber::EnvFilter;

fn init_logs(debug: bool, json: bool) {
    let default = if debug {
        "debug"
    } else if json {
        "warn"
    } else {
        "info"
    };
    // The WebRTC stack warns about routine things (unsupported DTLS extensions, candidates not
    // paired yet); its errors still show. RUST_LOG overrides all of this.
    let default = format!("{default},webrtc=error,rtc=error");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Commands::Id { data_dir }) => {
            let dir = data_dir.unwrap_or_else(weft_native::default_data_dir);
            let keys = weft_native::identity_file::load_or_create(&dir)?;
            println!("{}", keys.peer_id());
            Ok(())
        }
        Some(Commands::Run(args)) => {
            init_logs(args.debug, args.json);
            cli::run::run(*args).await
        }
        None => {
            init_logs(cli.run.debug, cli.run.json);
            cli::run::run(cli.run).await
        }
    }
}
