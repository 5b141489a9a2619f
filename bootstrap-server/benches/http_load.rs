//! Load on the name API, with `/healthz` as the baseline measured in the same run:
//! `cargo bench -p bootstrap-server --bench http_load` (needs `wrk`: `apt-get install wrk`).
//!
//! The server runs in this process on loopback (release build, SQLite file in a temp dir, rate
//! limits off, quotas raised so one address can hold thousands of names); `wrk` is the load tool.
//! Printed: requests/s and p50/p99 for `GET /healthz`, `GET /v1/names/{name}` and `PUT` updates
//! (each a real signed update with a higher seq, synced to disk), and each as a ratio of healthz.

use bootstrap_server::registry::Quotas;
use bootstrap_server::{AppState, ServerConfig};
use node_core::identity::Keypair;
use node_core::names::{Name, NameRecord};
use std::io::Write;
use std::path::Path;
use std::process::Command;

const SECONDS: &str = "10";
const THREADS: usize = 2;
/// Names each wrk thread updates, round-robin: far more than its requests in flight, so two
/// updates of one name are never in flight at once (they would race on `seq`).
const PUT_NAMES: usize = 256;
const PUT_ROUNDS: u64 = 100;

struct Run {
    rps: f64,
    p50: f64,
    p99: f64,
    ok: u64,
    bad: u64,
}

fn wrk(url: &str, script: &Path, args: &[&str]) -> Run {
    let out = Command::new("wrk")
        .args(["-t", &THREADS.to_string(), "-c32", "-d", SECONDS, "--latency", "-s"])
        .arg(script)
        .arg(url)
        .arg("--")
        .args(args)
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().find(|l| l.starts_with("RESULT ")).unwrap_or_else(|| panic!("wrk printed no RESULT:\n{text}"));
    let field = |k: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    Run {
        rps: field("rps"),
        p50: field("p50_ms"),
        p99: field("p99_ms"),
        ok: field("ok2xx") as u64,
        bad: field("non2xx") as u64,
    }
}

fn main() {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("skipping: wrk is not installed (apt-get install wrk)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let owner = Keypair::from_secret([7; 32]);
    let addr = runtime.block_on(async {
        let pool = bootstrap_server::db::open(dir.path()).await.expect("db");
        let keys = bootstrap_server::keyfile::load_or_create(dir.path()).expect("key");
        let quotas = Quotas { per_ipv4: 100_000, per_ipv6: 100_000, per_ipv6_64: 100_000, per_ipv6_48: 100_000 };
        let config = ServerConfig { quotas, ..Default::default() };
        let state = AppState::new(pool.clone(), keys, config, bootstrap_server::system_clock());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(bootstrap_server::run(listener, state, std::future::pending()));
        addr
    });
    let now = (bootstrap_server::system_clock())();
    let record = |name: &str, seq: u64| {
        let r = NameRecord {
            name: Name::parse(name).expect("name"),
            value: format!("value {seq}").into_bytes(),
            owner: owner.peer_id(),
            seq,
            unix_ms: now,
            delete: false,
        };
        serde_json::to_string(&r.sign(&owner)).expect("json")
    };
    // The PUT requests, one file per wrk thread over disjoint names: every name claimed once
    // (seq 1), then updated round after round.
    for thread in 1..=THREADS {
        let path = dir.path().join(format!("puts-{thread}.tsv"));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("puts file"));
        for seq in 1..=PUT_ROUNDS {
            for k in 0..PUT_NAMES {
                let name = format!("bench-{thread}-{k}");
                writeln!(f, "/v1/names/{name}\t{}", record(&name, seq)).expect("write");
            }
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/load.lua");
    let base = format!("http://{addr}");
    let prefix = dir.path().join("puts-");
    let put = wrk(&base, &script, &["put", prefix.to_str().expect("utf-8 path")]);
    let healthz = wrk(&format!("{base}/healthz"), &script, &["get"]);
    let get = wrk(&format!("{base}/v1/names/bench-1-0"), &script, &["get"]);
    println!("weft-bootstrap under wrk -t2 -c32 -d{SECONDS}s on loopback (server and wrk share this machine)");
    for (what, r) in
        [("GET /healthz (baseline)", &healthz), ("GET /v1/names/{name}", &get), ("PUT /v1/names/{name}", &put)]
    {
        println!(
            "{what:<26} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ratio {:.2}  ({} 2xx, {} other)",
            r.rps,
            r.p50,
            r.p99,
            r.rps / healthz.rps,
            r.ok,
            r.bad
        );
    }
    assert!(get.ok > 0 && get.bad == 0, "lookups must succeed");
}
