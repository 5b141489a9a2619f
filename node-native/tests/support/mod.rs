//! Real `weft` processes for tests: spawn, read `--json` events, send commands, kill, restart.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub mod lab_server;
pub mod mosquitto;
pub mod natlab;
pub mod netns;

/// The `weft` binary under test.
pub fn weft_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft"))
}

/// Events a process printed so far.
#[derive(Default)]
struct Log {
    events: Vec<Value>,
    closed: bool,
}

/// A running `weft --json` process.
pub struct Weft {
    pub name: String,
    child: Child,
    stdin: ChildStdin,
    log: Arc<(Mutex<Log>, Condvar)>,
    pub peer_id: String,
    pub tcp_port: u16,
    pub data_dir: PathBuf,
    args: Vec<String>,
    prefix: Vec<String>,
}

impl Weft {
    /// Starts `weft run --json` with `args`, a data dir under `dir`, waiting for `ready`.
    pub fn start(dir: &Path, name: &str, args: &[&str]) -> Weft {
        Self::start_with_prefix(dir, name, args, &[])
    }

    /// Like `start`, with a command prefix (e.g. `ip netns exec NS`).
    pub fn start_with_prefix(dir: &Path, name: &str, args: &[&str], prefix: &[String]) -> Weft {
        let data_dir = dir.join(name);
        let mut all: Vec<String> = vec!["run".into(), "--json".into(), "--name".into(), name.into()];
        all.push("--data-dir".into());
        all.push(data_dir.display().to_string());
        all.extend(args.iter().map(|s| s.to_string()));
        Self::spawn(name, data_dir, all, prefix.to_vec())
    }

    fn spawn(name: &str, data_dir: PathBuf, args: Vec<String>, prefix: Vec<String>) -> Weft {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(weft_bin());
                c
            }
            None => Command::new(weft_bin()),
        };
        cmd.args(&args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn weft");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let log = Arc::new((Mutex::new(Log::default()), Condvar::new()));
        let log2 = log.clone();
        let label = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        let (m, cv) = &*log2;
                        m.lock().unwrap().events.push(v);
                        cv.notify_all();
                    }
                    Err(_) => eprintln!("[{label}] non-JSON stdout line: {line}"),
                }
            }
            let (m, cv) = &*log2;
            m.lock().unwrap().closed = true;
            cv.notify_all();
        });
        let mut w = Weft {
            name: name.to_owned(),
            child,
            stdin,
            log,
            peer_id: String::new(),
            tcp_port: 0,
            data_dir,
            args,
            prefix,
        };
        let ready = w.wait_event(Duration::from_secs(20), |e| e["event"] == "ready").expect("weft printed ready");
        w.peer_id = ready["peer_id"].as_str().unwrap().to_owned();
        w.tcp_port = ready["tcp_port"].as_u64().unwrap() as u16;
        w
    }

    /// Sends one JSON command.
    pub fn send(&mut self, cmd: Value) {
        writeln!(self.stdin, "{cmd}").expect("write command");
        self.stdin.flush().expect("flush");
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Value> {
        self.log.0.lock().unwrap().events.clone()
    }

    /// Events matching `pred`, so far.
    pub fn count(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.log.0.lock().unwrap().events.iter().filter(|e| pred(e)).count()
    }

    /// Waits for an event matching `pred` (including ones already seen).
    pub fn wait_event(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        self.wait_until(timeout, |evs| evs.iter().find(|e| pred(e)).cloned())
    }

    /// Waits until `f` over all events so far returns `Some`.
    pub fn wait_until<T>(&self, timeout: Duration, f: impl Fn(&[Value]) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.log;
        let mut log = m.lock().unwrap();
        loop {
            if let Some(t) = f(&log.events) {
                return Some(t);
            }
            let now = Instant::now();
            if now >= deadline || log.closed {
                return None;
            }
            log = cv.wait_timeout(log, deadline - now).unwrap().0;
        }
    }

    /// Peer ids currently linked, asked of the node.
    pub fn peers(&mut self) -> Vec<String> {
        let before = self.count(|e| e["event"] == "peers");
        self.send(serde_json::json!({"cmd": "peers"}));
        let ev = self
            .wait_until(Duration::from_secs(10), |evs| {
                evs.iter().filter(|e| e["event"] == "peers").nth(before).cloned()
            })
            .expect("peers answer");
        ev["list"].as_array().unwrap().iter().map(|p| p["peer_id"].as_str().unwrap().to_owned()).collect()
    }

    /// Polls `peers` until `f` holds.
    pub fn wait_peers(&mut self, timeout: Duration, f: impl Fn(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let p = self.peers();
            if f(&p) {
                return true;
            }
            if Instant::now() >= deadline {
                eprintln!("[{}] peers at timeout: {p:?}", self.name);
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills the process hard (no goodbye, no state flush beyond what is on disk).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same command again (same data dir, same args).
    pub fn restart(&mut self) {
        self.kill();
        let fresh = Self::spawn(&self.name, self.data_dir.clone(), self.args.clone(), self.prefix.clone());
        *self = fresh;
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asks the node to quit and waits for it.
    pub fn quit(mut self) {
        self.send(serde_json::json!({"cmd": "quit"}));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }
}

impl Drop for Weft {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// BLAKE3 of a file, hex.
pub fn hash_file(path: &Path) -> String {
    let mut h = blake3::Hasher::new();
    let mut f = std::fs::File::open(path).expect("open");
    std::io::copy(&mut f, &mut h).expect("read");
    h.finalize().to_hex().to_string()
}

/// Writes `len` bytes of deterministic pseudo-random content.
pub fn make_file(path: &Path, len: u64, seed: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for b in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            b.copy_from_slice(&bytes[..b.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}
