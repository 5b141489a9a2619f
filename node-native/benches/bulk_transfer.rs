//! Bench (a): a bulk file transfer between two Weft nodes on loopback, against a plain TCP copy
//! of the same bytes in the same run, printed as a throughput ratio. Also measures the two Noise
//! cipher suites, which is how AES-GCM was chosen.
//!
//!     cargo bench -p node-native --bench bulk_transfer            # 1 GiB
//!     WEFT_BENCH_MIB=256 cargo bench -p node-native --bench bulk_transfer

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};
use weft_native::node_core::Event;
use weft_native::{start, NodeConfig, NodeEvent};

/// Baseline: read the file, send it over loopback TCP, write it to a file on the other side.
fn raw_tcp_copy(src: &Path, dst: &Path) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dst = dst.to_owned();
    let start = Instant::now();
    let receiver = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut out = std::fs::File::create(&dst).unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).unwrap();
        }
        out.sync_all().unwrap();
    });
    let mut s = TcpStream::connect(addr).unwrap();
    let mut f = std::fs::File::open(src).unwrap();
    std::io::copy(&mut f, &mut s).unwrap();
    drop(s);
    receiver.join().unwrap();
    start.elapsed()
}

/// Weft: node A offers the file to node B; returns (hash + offer time, transfer time).
async fn weft_copy(dir: &Path, src: &Path) -> (Duration, Duration) {
    let cfg = |name: &str| NodeConfig {
        name: name.into(),
        data_dir: dir.join(name),
        downloads_dir: dir.join(name).join("downloads"),
        lan_discovery: false,
        listen: "127.0.0.1:0".parse().unwrap(),
        ..NodeConfig::default()
    };
    let b = start(cfg("b")).await.unwrap();
    let mut events = b.subscribe();
    let a = start(NodeConfig { connect: vec![b.tcp_addr()], ..cfg("a") }).await.unwrap();
    while a.peers().await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    a.send_file(src, b.peer_id()).await.unwrap();
    let offered = t0.elapsed();
    let t1 = Instant::now();
    loop {
        match events.recv().await {
            Ok(NodeEvent::Core(Event::TransferDone { .. })) => break,
            Ok(NodeEvent::Core(Event::TransferFailed { reason, .. })) => panic!("transfer failed: {reason}"),
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let transfer = t1.elapsed();
    a.shutdown().await;
    b.shutdown().await;
    (offered, transfer)
}

fn cipher_throughput(params: &str, bytes: usize) -> f64 {
    let p: snow::params::NoiseParams = params.parse().unwrap();
    let builder = snow::Builder::new(p.clone());
    let ki = builder.generate_keypair().unwrap();
    let kr = snow::Builder::new(p.clone()).generate_keypair().unwrap();
    let mut i = snow::Builder::new(p.clone()).local_private_key(&ki.private).build_initiator().unwrap();
    let mut r = snow::Builder::new(p).local_private_key(&kr.private).build_responder().unwrap();
    let (mut m, mut pl) = (vec![0u8; 65535], vec![0u8; 65535]);
    let n = i.write_message(&[], &mut m).unwrap();
    r.read_message(&m[..n], &mut pl).unwrap();
    let n = r.write_message(&[], &mut m).unwrap();
    i.read_message(&m[..n], &mut pl).unwrap();
    let n = i.write_message(&[], &mut m).unwrap();
    r.read_message(&m[..n], &mut pl).unwrap();
    let mut t = i.into_transport_mode().unwrap();
    let plain = vec![7u8; 65519];
    let start = Instant::now();
    let mut done = 0;
    while done < bytes {
        t.write_message(&plain, &mut m).unwrap();
        done += plain.len();
    }
    done as f64 / start.elapsed().as_secs_f64() / (1 << 20) as f64
}

fn main() {
    let mib: u64 = std::env::var("WEFT_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let size = mib << 20;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("bulk.bin");
    support::make_file(&src, size, 1);

    let aes = cipher_throughput("Noise_XX_25519_AESGCM_SHA256", 512 << 20);
    let chacha = cipher_throughput("Noise_XX_25519_ChaChaPoly_SHA256", 512 << 20);
    println!("noise seal: AES-GCM {aes:.0} MiB/s, ChaCha20-Poly1305 {chacha:.0} MiB/s, ratio {:.2}", aes / chacha);

    let raw = raw_tcp_copy(&src, &dir.path().join("raw.out"));
    let _ = std::fs::remove_file(dir.path().join("raw.out"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (offer, transfer) = rt.block_on(weft_copy(dir.path(), &src));
    let mibs = |d: Duration| mib as f64 / d.as_secs_f64();
    println!("file: {mib} MiB");
    println!("raw tcp copy (file -> socket -> file): {:.2} s, {:.0} MiB/s", raw.as_secs_f64(), mibs(raw));
    println!(
        "weft (noise + blake3 per chunk + whole-file check): {:.2} s, {:.0} MiB/s; hashing for the offer took {:.2} s more",
        transfer.as_secs_f64(),
        mibs(transfer),
        offer.as_secs_f64()
    );
    println!("ratio weft/raw (transfer): {:.2}", raw.as_secs_f64() / transfer.as_secs_f64());
    println!("ratio weft/raw (including offer hashing): {:.2}", raw.as_secs_f64() / (transfer + offer).as_secs_f64());
}
