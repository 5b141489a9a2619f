//! `weft run`: start a node and connect it to stdin/stdout, as a prompt or as JSON lines.

use super::args::RunArgs;
use super::json::{self, JsonCommand};
use super::resolve;
use super::ui::Ui;
use anyhow::Context;
use serde_json::json;
use std::path::PathBuf;
use tokio::sync::{broadcast, mpsc};
use weft_native::{start, NodeConfig, NodeEvent, NodeHandle};

const HELP: &str = "commands:
  <text>                 chat with everyone
  /peers                 list linked peers
  /connect <host:port>   link to a node (or <name>, through the bootstrap server; or <peer id>,
                         wherever it is, through NATs)
  /doctor <peer>         how this node links to <peer>: each strategy tried, and why it won or
                         did not (checks now when there is nothing to report)
  /discover              announce on the LAN now
  /send <file> [peer]    send a file to one peer (or all)
  /msg <peer> <text>     direct message (peer: name, id or id prefix)
  /name claim <name>     hold <name> on the bootstrap server, pointing at this node
  /name lookup <name>    who holds <name>
  /quit                  leave";

/// Where output goes.
enum Out {
    Json,
    Human(Ui),
}

impl Out {
    fn error(&mut self, code: &str, message: &str) {
        match self {
            Out::Json => println!("{}", json::error(code, message)),
            Out::Human(ui) => ui.line(&format!("error: {message}")),
        }
    }

    fn info(&mut self, value: serde_json::Value, human: &str) {
        match self {
            Out::Json => println!("{value}"),
            Out::Human(ui) => ui.line(human),
        }
    }
}

/// "(others can /connect to a:p, b:p)" for the human ready line.
fn reach_hint(addrs: &[std::net::SocketAddr]) -> String {
    if addrs.is_empty() {
        return String::new();
    }
    let list: Vec<String> = addrs.iter().take(3).map(|a| a.to_string()).collect();
    format!(" (others can /connect to {})", list.join(", "))
}

/// "open http://…/ in a browser to join" for the human ready line, when the page is served.
fn page_hint(http: Option<std::net::SocketAddr>, listen_addrs: &[std::net::SocketAddr]) -> String {
    use std::net::{IpAddr, SocketAddr};
    let Some(http) = http else { return String::new() };
    let urls: Vec<String> = if http.ip().is_unspecified() {
        // A 0.0.0.0 socket takes only IPv4; [::] takes both. Link-local IPv6 needs a zone id no
        // browser's address bar accepts, and loopback is listed once, first.
        let reachable = |ip: &IpAddr| match ip {
            IpAddr::V4(v4) => !v4.is_loopback(),
            IpAddr::V6(v6) => http.is_ipv6() && !v6.is_loopback() && (v6.segments()[0] & 0xffc0) != 0xfe80,
        };
        let mut addrs = vec![SocketAddr::from(([127, 0, 0, 1], http.port()))];
        for ip in listen_addrs.iter().map(|a| a.ip()).filter(reachable) {
            let addr = SocketAddr::new(ip, http.port());
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        addrs.iter().take(4).map(|a| format!("http://{a}/")).collect()
    } else {
        vec![format!("http://{http}/")]
    };
    format!("open {} in a browser to join from there\n", urls.join(" or "))
}

fn default_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "weft".to_owned())
}

/// Runs a node until the user quits or a signal arrives.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or_else(weft_native::default_data_dir);
    let mut connect_addrs = Vec::new();
    let mut connect_names = Vec::new();
    for c in &args.connect {
        if resolve::is_address(c) {
            connect_addrs.push(resolve::addr(c).await.map_err(anyhow::Error::msg).context("--connect")?);
        } else if args.bootstrap.is_some() || (args.mqtt.is_some() && c.parse::<node_core::PeerId>().is_ok()) {
            connect_names.push(c.clone());
        } else {
            anyhow::bail!(
                "--connect {c}: not host:port; names need --bootstrap URL, PeerIds --bootstrap URL or --mqtt URL"
            );
        }
    }
    let bootstrap = args.bootstrap.as_ref().map(|url| weft_native::BootstrapConfig {
        url: url.clone(),
        key: args.bootstrap_key,
        dial_peers: args.bootstrap_peers,
    });
    let config = NodeConfig {
        name: args.name.clone().unwrap_or_else(default_name),
        mesh: args.mesh.clone(),
        listen: (args.bind, args.port).into(),
        connect: connect_addrs,
        max_peers: usize::from(args.max_peers),
        downloads_dir: args.downloads.clone().unwrap_or_else(|| data_dir.join("downloads")),
        data_dir,
        lan_discovery: !args.no_discovery,
        discovery_ports: args.discovery_ports.0.clone(),
        bootstrap,
        http: args.http.map(|listen| weft_native::HttpConfig { listen, web_dir: args.web_dir.clone() }),
        punch: weft_native::node_core::nat::plan::Punching { udp: !args.no_udp_punch, tcp: !args.no_tcp_punch },
        mqtt: args.mqtt.clone(),
        stun: args.stun,
        upnp: !args.no_upnp,
        ..NodeConfig::default()
    };
    let name = config.name.clone();
    let downloads = config.downloads_dir.clone();
    let node = start(config).await.context("starting the node")?;
    let mut events = node.subscribe();
    let mut out = if args.json { Out::Json } else { Out::Human(Ui::new()) };
    out.info(
        json!({"event": "ready", "peer_id": node.peer_id().to_string(), "name": name,
               "tcp": node.tcp_addr().to_string(), "tcp_port": node.tcp_addr().port(),
               "http": node.http_addr().map(|a| a.to_string()),
               "listen_addrs": node.listen_addrs().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
               "downloads": downloads.display().to_string()}),
        &format!(
            "weft {} ({name}) listening on tcp port {}{}; files go to {}\n{}nodes on this LAN appear by themselves. /help lists commands.",
            node.peer_id().short(),
            node.tcp_addr().port(),
            reach_hint(node.listen_addrs()),
            downloads.display(),
            page_hint(node.http_addr(), node.listen_addrs()),
        ),
    );

    for name in &connect_names {
        connect(&node, &mut out, name).await;
    }

    let mut lines = stdin_lines();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(NodeEvent::Core(e)) => match &mut out {
                    Out::Json => if let Some(v) = json::event(&e) { println!("{v}") },
                    Out::Human(ui) => ui.event(&e),
                },
                Ok(NodeEvent::Error { code, message }) => out.error(code, &message),
                Ok(NodeEvent::BootstrapConnected { url, server_key, observed_ip, peers }) => out.info(
                    json!({"event": "bootstrap_connected", "url": url, "server_key": server_key.map(|k| k.to_string()),
                           "observed_ip": observed_ip.to_string(), "peers": peers}),
                    &format!("bootstrap server {url} sees us at {observed_ip}; {peers} peers in the mesh there"),
                ),
                Ok(NodeEvent::PortMapped { external, error }) => out.info(
                    json!({"event": "upnp", "external": external.map(|a| a.to_string()), "error": error}),
                    &match (external, &error) {
                        (Some(a), _) => format!("the router maps {a} to this node (UPnP)"),
                        (None, Some(e)) => format!("no port mapping: {e}"),
                        (None, None) => "no port mapping".to_owned(),
                    },
                ),
                Ok(NodeEvent::Broker { url, connected, error }) => out.info(
                    json!({"event": "mqtt", "url": url, "connected": connected, "error": error}),
                    &match (&error, connected) {
                        (_, true) => format!("signaling through the MQTT broker {url}"),
                        (Some(e), false) => format!("MQTT broker {url}: {e} (retrying)"),
                        (None, false) => format!("MQTT broker {url}: disconnected (retrying)"),
                    },
                ),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => out.error("lagged", &format!("{n} events were dropped: output too slow")),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            Some(line) = lines.recv() => {
                let quit = if args.json { json_line(&node, &mut out, &line).await } else { prompt_line(&node, &mut out, &line).await };
                if quit { break; }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    node.shutdown().await;
    Ok(())
}

/// Lines typed on stdin, read by a plain thread of its own. Tokio's stdin reads on its blocking
/// pool, and the runtime waits for that pool on exit: a parent that keeps our stdin open (a test
/// harness, a supervisor) would keep a terminated `weft` alive forever. A detached thread dies with
/// the process. When stdin closes, the select loop's branch goes quiet and
/// the node runs on until a signal, so `weft < /dev/null &` works.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel::<String>(64);
    let spawned = std::thread::Builder::new().name("stdin".into()).spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot read commands from stdin: {e}");
    }
    rx
}

/// Handles one JSON command; returns true to quit.
async fn json_line(node: &NodeHandle, out: &mut Out, line: &str) -> bool {
    if line.trim().is_empty() {
        return false;
    }
    let cmd: JsonCommand = match serde_json::from_str(line) {
        Ok(c) => c,
        Err(e) => {
            out.error("bad_command", &format!("cannot parse command: {e}"));
            return false;
        }
    };
    match cmd {
        JsonCommand::Chat { text } => report(out, node.chat(text).await),
        JsonCommand::Msg { peer, text } => match find_peer(node, &peer).await {
            Ok(to) => report(out, node.direct(to, text).await),
            Err(e) => out.error("unknown_peer", &e),
        },
        JsonCommand::Send { path, peer } => send(node, out, PathBuf::from(path), peer).await,
        JsonCommand::Connect { addr } => connect(node, out, &addr).await,
        JsonCommand::Peers => match node.peers().await {
            Ok(list) => println!("{}", json::peers(&list)),
            Err(e) => out.error("stopped", &e.to_string()),
        },
        JsonCommand::Discover => report(out, node.discover().await),
        JsonCommand::Doctor { peer } => doctor(node, out, &peer).await,
        JsonCommand::Stats => match node.stats().await {
            Ok((s, d)) => println!(
                "{}",
                json!({"event": "stats", "unknown_kinds": s.unknown_kinds, "bad_datagrams": s.bad_datagrams,
                       "replayed_announcements": s.replayed_announcements, "misbehaving_links": s.misbehaving_links,
                       "duplicate_messages": s.duplicate_messages, "bad_signatures": s.bad_signatures,
                       "bad_envelopes": s.bad_envelopes, "foreign_mesh_announcements": s.foreign_mesh_announcements,
                       "dropped_datagrams": d.dropped_datagrams, "misaddressed_envelopes": d.misaddressed_envelopes,
                       "throttled_envelopes": d.throttled_envelopes, "envelope_cache_full": s.envelope_cache_full,
                       "overlay_dropped": s.overlay_dropped, "flooded_messages": s.flooded_messages})
            ),
            Err(e) => out.error("stopped", &e.to_string()),
        },
        JsonCommand::NameClaim { name } => name_answer(out, claimed(node.claim_name(&name).await)),
        JsonCommand::NameLookup { name } => name_answer(out, node.lookup_name(&name).await),
        JsonCommand::Quit => return true,
    }
    false
}

/// Handles one prompt line; returns true to quit.
async fn prompt_line(node: &NodeHandle, out: &mut Out, line: &str) -> bool {
    let line = line.trim();
    if line.is_empty() {
        return false;
    }
    let Some(rest) = line.strip_prefix('/') else {
        report(out, node.chat(line).await);
        return false;
    };
    let (cmd, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let arg = arg.trim();
    match cmd {
        "quit" | "exit" | "q" => return true,
        "help" | "h" | "?" => out.info(json!({}), HELP),
        "peers" => match node.peers().await {
            Ok(list) if list.is_empty() => out.info(json!({}), "no peers yet"),
            Ok(list) => {
                for p in list {
                    let rtt =
                        p.rtt.map(|r| format!("{:.1} ms", r.as_secs_f64() * 1000.0)).unwrap_or_else(|| "-".into());
                    let link = p.kind.map(|k| k.as_str()).unwrap_or("-");
                    let addr = p.addr.map(|a| a.to_string()).unwrap_or_default();
                    out.info(json!({}), &format!("  {} {:<16} {link:<6} {addr:<22} rtt {rtt}", p.peer.short(), p.name));
                }
            }
            Err(e) => out.error("stopped", &e.to_string()),
        },
        "connect" if !arg.is_empty() => connect(node, out, arg).await,
        "doctor" if !arg.is_empty() => doctor(node, out, arg).await,
        "name" => match arg.split_once(char::is_whitespace).map(|(a, n)| (a, n.trim())) {
            Some(("claim", name)) => name_answer(out, claimed(node.claim_name(name).await)),
            Some(("lookup", name)) => name_answer(out, node.lookup_name(name).await),
            _ => out.error("usage", "usage: /name claim <name> | /name lookup <name>"),
        },
        "discover" => report(out, node.discover().await),
        "send" if !arg.is_empty() => {
            // The file path may contain spaces: a last word naming a linked peer is the peer.
            let (path, peer) = match arg.rsplit_once(char::is_whitespace) {
                Some((p, who)) if find_peer(node, who).await.is_ok() => (p.trim().to_owned(), Some(who.to_owned())),
                _ => (arg.to_owned(), None),
            };
            send(node, out, PathBuf::from(path), peer).await;
        }
        "msg" => match arg.split_once(char::is_whitespace) {
            Some((who, text)) => match find_peer(node, who).await {
                Ok(to) => report(out, node.direct(to, text.trim()).await),
                Err(e) => out.error("unknown_peer", &e),
            },
            None => out.error("usage", "usage: /msg <peer> <text>"),
        },
        "connect" | "send" | "doctor" => {
            let what = match cmd {
                "send" => "file> [peer",
                "doctor" => "peer",
                _ => "host:port",
            };
            out.error("usage", &format!("usage: /{cmd} <{what}>"))
        }
        other => out.error("unknown_command", &format!("unknown command /{other}; /help lists them")),
    }
    false
}

/// A claim's answer, which always comes from the server.
fn claimed(
    r: Result<node_core::names::NameAnswer, weft_native::RequestError>,
) -> Result<weft_native::ResolvedName, weft_native::RequestError> {
    r.map(|answer| weft_native::ResolvedName { answer, source: weft_native::NameSource::Server })
}

/// Prints a name answer as the `name` event, or the error with a stable code.
fn name_answer(out: &mut Out, r: Result<weft_native::ResolvedName, weft_native::RequestError>) {
    use weft_native::{NameSource, RequestError as E};
    match r {
        Ok(weft_native::ResolvedName { answer: a, source }) => {
            let rec = &a.record.record;
            let value = String::from_utf8_lossy(&rec.value).into_owned();
            let expires_unix = a.expires_unix_ms / 1000;
            let (from, note) = match &source {
                NameSource::Mesh { server_error } => {
                    ("mesh", format!(" (from the mesh, signed by the server; {server_error})"))
                }
                _ => ("server", String::new()),
            };
            out.info(
                json!({"event": "name", "name": rec.name.to_string(), "value": value, "owner": rec.owner.to_string(),
                       "seq": rec.seq, "expires_unix": expires_unix, "source": from}),
                &format!(
                    "{} is held by {} until unix {expires_unix}: {}{note}",
                    rec.name,
                    rec.owner,
                    super::ui::printable(&value)
                ),
            );
        }
        Err(e) => {
            let code = match &e {
                E::NoBootstrap => "no_bootstrap",
                E::BadName(..) => "bad_name",
                E::NameNotFound(_) => "name_not_found",
                E::NameUnavailable { .. } => "name_unavailable",
                E::NotANode(_) => "not_a_node",
                E::Bootstrap(weft_native::BootstrapError::Refused { code, .. }) => code.as_str(),
                E::Bootstrap(_) => "bootstrap",
                _ => "command_failed",
            }
            .to_owned();
            out.error(&code, &e.to_string());
        }
    }
}

fn report<T>(out: &mut Out, r: Result<T, weft_native::RequestError>) {
    if let Err(e) = r {
        out.error("command_failed", &e.to_string());
    }
}

async fn find_peer(node: &NodeHandle, query: &str) -> Result<node_core::PeerId, String> {
    let peers = node.peers().await.map_err(|e| e.to_string())?;
    resolve::peer(query, &peers)
}

/// `/doctor`: the link and the last report; with neither, a link attempt whose report follows
/// as a `connectivity` event.
async fn doctor(node: &NodeHandle, out: &mut Out, who: &str) {
    let peer = match who.parse::<node_core::PeerId>() {
        Ok(id) => id,
        Err(_) => match find_peer(node, who).await {
            Ok(id) => id,
            Err(e) => return out.error("unknown_peer", &e),
        },
    };
    let d = match node.diagnose(peer).await {
        Ok(d) => d,
        Err(e) => return out.error("stopped", &e.to_string()),
    };
    let mut lines = Vec::new();
    let mut started = false;
    if let Some(link) = &d.link {
        let kind = link.kind.map(|k| k.as_str()).unwrap_or("-");
        let addr = link.addr.map(|a| format!(" at {a}")).unwrap_or_default();
        lines.push(format!("{}: linked over {kind}{addr}", peer.short()));
    }
    match &d.report {
        Some(r) => lines.extend(r.summary().into_iter().map(|l| format!("  {l}"))),
        None if d.attempt_running => lines.push(format!("{}: a link attempt is under way", peer.short())),
        None if d.link.is_some() => lines.push("  (linked without crossing NATs: no attempt to report)".into()),
        None => match node.command(node_core::Command::ConnectPeer { peer }).await {
            Ok(_) => {
                started = true;
                lines.push(format!("{}: not linked; trying now (the report follows)", peer.short()))
            }
            Err(e) => lines.push(format!("{}: not linked, and cannot try: {e}", peer.short())),
        },
    }
    let mut answer = node_core::json::diagnosis(&d);
    if started {
        answer["attempt_running"] = json!(true);
    }
    out.info(answer, &lines.join("\n"));
}

async fn connect(node: &NodeHandle, out: &mut Out, target: &str) {
    if let Ok(peer) = target.parse::<node_core::PeerId>() {
        let linked = node.peers().await.map(|l| l.iter().any(|p| p.peer == peer)).unwrap_or(false);
        if linked {
            return out.error("connect", "already linked to that peer");
        }
        // Across networks: the two nodes compare notes over signaling and work down the
        // strategy ladder; a `connectivity` event tells how it went.
        return match node.command(node_core::Command::ConnectPeer { peer }).await {
            Ok(_) => out.info(json!({}), &format!("linking to {} (through NATs if need be)", peer.short())),
            Err(e) => out.error("connect", &e.to_string()),
        };
    }
    if !resolve::is_address(target) {
        return match node.connect_name(target).await {
            Ok(peer) => out.info(json!({}), &format!("dialing {} ({target})", peer.short())),
            Err(e) => out.error("connect", &e.to_string()),
        };
    }
    match resolve::addr(target).await {
        Ok(addr) => report(out, node.connect(addr).await),
        Err(e) => out.error("bad_address", &e),
    }
}

async fn send(node: &NodeHandle, out: &mut Out, path: PathBuf, peer: Option<String>) {
    let targets = match &peer {
        Some(p) => match find_peer(node, p).await {
            Ok(id) => vec![id],
            Err(e) => return out.error("unknown_peer", &e),
        },
        None => match node.peers().await {
            Ok(list) => list.into_iter().map(|p| p.peer).collect(),
            Err(e) => return out.error("stopped", &e.to_string()),
        },
    };
    if targets.is_empty() {
        return out.error("no_peers", "no peers to send to");
    }
    if !path.is_file() {
        return out.error("bad_file", &format!("{} is not a readable file", path.display()));
    }
    for to in targets {
        if let Err(e) = node.send_file(&path, to).await {
            out.error("send_failed", &e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::page_hint;

    #[test]
    fn the_page_hint_lists_only_addresses_a_browser_can_open() {
        let listen: Vec<std::net::SocketAddr> =
            ["127.0.0.1:7000", "192.168.1.5:7000", "[fe80::1]:7000", "[2001:db8::5]:7000", "192.168.1.5:7001"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect();
        let v4 = page_hint(Some("0.0.0.0:8480".parse().unwrap()), &listen);
        assert_eq!(v4, "open http://127.0.0.1:8480/ or http://192.168.1.5:8480/ in a browser to join from there\n");
        let dual = page_hint(Some("[::]:8480".parse().unwrap()), &listen);
        assert_eq!(
            dual,
            "open http://127.0.0.1:8480/ or http://192.168.1.5:8480/ or http://[2001:db8::5]:8480/ in a browser to join from there\n"
        );
        assert_eq!(
            page_hint(Some("10.0.0.2:80".parse().unwrap()), &listen),
            "open http://10.0.0.2:80/ in a browser to join from there\n"
        );
        assert_eq!(page_hint(None, &listen), "");
    }
}
