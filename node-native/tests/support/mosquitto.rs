//! A real MQTT broker for tests: Debian's mosquitto on a TCP listener the test chooses, with its
//! own configuration file, killed on drop. Plus a watcher that subscribes to `weft/#` and keeps
//! every message, to check what the broker gets to see.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where mosquitto is installed, or why the test cannot run: skips on a user's machine without
/// it (with the reason), fails under CI=true.
pub fn required() -> Option<PathBuf> {
    let found = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].iter().map(PathBuf::from).find(|p| p.exists());
    match found {
        Some(p) => Some(p),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("MQTT tests must run under CI, but mosquitto is not installed (apt-get install mosquitto)")
        }
        None => {
            eprintln!("skipping MQTT test: mosquitto is not installed (apt-get install mosquitto)");
            None
        }
    }
}

/// A running broker.
pub struct Mosquitto {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Mosquitto {
    /// Starts `bin` listening on `addr`, run through `prefix` (e.g. `ip netns exec NS`), with its
    /// configuration under `dir`. `reachable` connects to it from wherever the test can (a
    /// namespace thread, say); the broker is ready once it succeeds.
    pub fn start(
        bin: &Path,
        dir: &Path,
        addr: SocketAddr,
        prefix: &[String],
        reachable: impl Fn() -> bool,
    ) -> Mosquitto {
        let conf = dir.join("mosquitto.conf");
        let text = format!(
            "listener {} {}\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\n",
            addr.port(),
            addr.ip()
        );
        std::fs::write(&conf, text).unwrap();
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd.arg("-c").arg(&conf).stdout(Stdio::null()).spawn().expect("start mosquitto");
        let mut broker = Mosquitto { child, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reachable() {
            if Instant::now() > deadline || broker.child.try_wait().ok().flatten().is_some() {
                panic!("mosquitto did not start listening on {addr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    /// The URL nodes get.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a TCP connection to `addr` succeeds now.
pub fn accepts(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// One message the watcher saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// A subscriber to `weft/#`, keeping every message; it also publishes raw bytes, as an attacker
/// on the broker would.
pub struct Watcher {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    client: rumqttc::AsyncClient,
    runtime: tokio::runtime::Runtime,
}

impl Watcher {
    /// Connects to `broker` from a runtime built by the caller's thread (build it inside a
    /// namespace thread to watch a broker there).
    pub fn connect(runtime: tokio::runtime::Runtime, broker: SocketAddr) -> Watcher {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let host = match broker.ip() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => v6.to_string(),
        };
        let mut options = rumqttc::MqttOptions::new("weft-test-watcher", host, broker.port());
        options.set_max_packet_size(128 * 1024, 128 * 1024);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = seen.clone();
        runtime.spawn(async move {
            let mut told = Some(tx);
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        if let Some(tx) = told.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        sink.lock().unwrap().push(Seen { topic: p.topic.clone(), payload: p.payload.to_vec() });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let sub = client.clone();
        runtime.block_on(async move { sub.subscribe("weft/#", rumqttc::QoS::AtLeastOnce).await.unwrap() });
        rx.recv_timeout(Duration::from_secs(10)).expect("the watcher subscribed");
        Watcher { seen, client, runtime }
    }

    /// Every message so far.
    pub fn messages(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Publishes `payload` on `topic`, as anyone on the broker could.
    pub fn publish(&self, topic: &str, payload: Vec<u8>) {
        let client = self.client.clone();
        let topic = topic.to_owned();
        self.runtime
            .block_on(async move { client.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload).await.unwrap() });
    }
}
