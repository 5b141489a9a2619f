//! MQTT signaling (`--mqtt URL`): the serverless alternative to the bootstrap server's websocket.
//! Each node subscribes to `weft/v1/<mesh>/<its PeerId>` and publishes envelopes to the
//! recipient's topic. Envelopes are signed and sealed (DESIGN.md), so the broker sees topics and
//! ciphertext, never descriptions, candidates or addresses. QoS 1 (at least once): the core drops
//! copies by nonce, as it does an envelope that also came over the server.
//!
//! A broker has no presence: while it is connected the core may address any PeerId through it
//! (`Input::SignalBroker`). The connection is kept up with backoff; the user sees each change.

use crate::actor::ToActor;
use crate::handle::NodeEvent;
use crate::signal_router::SignalRouter;
use node_core::envelope::{Envelope, MAX_ENVELOPE_LEN};
use node_core::{Input, PeerId};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode, TlsConfiguration, Transport};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// The topic tree's root and version.
const ROOT: &str = "weft/v1";
/// MQTT keepalive.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// Publishes queued towards the broker before more are refused (the core's attempts retry).
const QUEUE: usize = 256;
/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Largest MQTT packet taken from the broker. MQTT 3.1.1 cannot tell a broker our limit, and
/// an oversized packet ends the connection, so this is far above any envelope (which are
/// checked against their own cap): a stranger's big message must not knock us off the broker.
const MAX_INCOMING: usize = 4 << 20;
/// Room for the topic and MQTT's own header around an envelope we publish.
const PACKET_OVERHEAD: usize = 1024;

/// Why a broker URL is unusable.
#[derive(Debug, thiserror::Error)]
pub enum MqttUrlError {
    /// Not a URL.
    #[error("bad MQTT URL {0:?}: {1}")]
    Parse(String, String),
    /// A scheme other than mqtt, mqtts, ws or wss.
    #[error("bad MQTT URL {0:?}: the scheme must be mqtt://, mqtts://, ws:// or wss://")]
    Scheme(String),
    /// No host.
    #[error("bad MQTT URL {0:?}: no host")]
    NoHost(String),
}

/// How to reach a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// The URL as given, for messages (without a password).
    pub shown: String,
    host: String,
    port: u16,
    /// Websocket transport: the whole URL is the address.
    websocket: Option<String>,
    tls: bool,
    credentials: Option<(String, String)>,
}

impl std::str::FromStr for BrokerUrl {
    type Err = MqttUrlError;

    /// `mqtt://[user:pass@]host[:port]` (1883), `mqtts://` (8883), `ws://host[:port]/path` (80),
    /// `wss://` (443).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = url::Url::parse(s).map_err(|e| MqttUrlError::Parse(s.to_owned(), e.to_string()))?;
        let (default_port, websocket, tls) = match url.scheme() {
            "mqtt" | "tcp" => (1883, false, false),
            "mqtts" | "ssl" => (8883, false, true),
            "ws" => (80, true, false),
            "wss" => (443, true, true),
            _ => return Err(MqttUrlError::Scheme(s.to_owned())),
        };
        let host = url.host_str().ok_or_else(|| MqttUrlError::NoHost(s.to_owned()))?.to_owned();
        let port = url.port().unwrap_or(default_port);
        let credentials = (!url.username().is_empty())
            .then(|| (url.username().to_owned(), url.password().unwrap_or_default().to_owned()));
        let mut bare = url.clone();
        let _ = bare.set_password(None);
        let shown = bare.clone();
        let _ = bare.set_username("");
        // The credentials go in MQTT's CONNECT, not in the websocket request.
        let websocket = websocket.then(|| bare.to_string());
        Ok(BrokerUrl { shown: shown.to_string(), host, port, websocket, tls, credentials })
    }
}

/// Whether `mesh` can be a topic level: MQTT reserves `+` and `#` (wildcards) and `/` (the
/// level separator), and forbids NUL.
pub fn topic_safe(mesh: &str) -> bool {
    !mesh.is_empty() && !mesh.contains(['+', '#', '/', '\0'])
}

/// The topic that reaches `peer` in `mesh`.
pub fn topic(mesh: &str, peer: &PeerId) -> String {
    format!("{ROOT}/{mesh}/{peer}")
}

/// The publishing side, as the signal router holds it.
#[derive(Clone)]
pub struct BrokerSender {
    client: AsyncClient,
    mesh: String,
    me: PeerId,
}

impl BrokerSender {
    /// Queues `envelope` for `to`'s topic; false when the queue is full, or when the envelope is
    /// not ours: the broker carries only what this node signed (it may hold credentials a
    /// peer or a browser on our `/v1/signal` has no business using).
    pub fn publish(&self, to: &PeerId, envelope: Vec<u8>) -> bool {
        if !Envelope::decode(&envelope).is_ok_and(|e| e.from == self.me) {
            return false;
        }
        self.client.try_publish(topic(&self.mesh, to), QoS::AtLeastOnce, false, envelope).is_ok()
    }
}

fn options(url: &BrokerUrl, me: &PeerId) -> Result<MqttOptions, rustls::Error> {
    // Unique per process: a broker drops the older of two sessions with one client id.
    let id = format!("weft-{}-{:08x}", me.short(), rand::random::<u32>());
    let address = url.websocket.clone().unwrap_or_else(|| url.host.clone());
    let mut o = MqttOptions::new(id, address, url.port);
    o.set_keep_alive(KEEPALIVE)
        .set_clean_session(true)
        .set_max_packet_size(MAX_INCOMING, MAX_ENVELOPE_LEN + PACKET_OVERHEAD);
    o.set_request_channel_capacity(QUEUE);
    if let Some((user, pass)) = &url.credentials {
        o.set_credentials(user, pass);
    }
    let tls = || tls_config().map(|c| TlsConfiguration::Rustls(Arc::new(c)));
    o.set_transport(match (url.websocket.is_some(), url.tls) {
        (false, false) => Transport::Tcp,
        (false, true) => Transport::Tls(tls()?),
        (true, false) => Transport::Ws,
        (true, true) => Transport::Wss(tls()?),
    });
    Ok(o)
}

/// TLS to a broker: the usual web roots, ring as everywhere else in this crate.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Connects to the broker and keeps the connection up for as long as the node runs: subscribes
/// to our topic on every (re)connect, hands what arrives there to the actor (at most
/// [`RATE`] envelopes a second), and tells the router and the core whether the broker is
/// reachable: only once the subscription is granted.
pub fn spawn(
    url: BrokerUrl,
    mesh: String,
    me: PeerId,
    router: Arc<SignalRouter>,
    to_actor: mpsc::Sender<ToActor>,
    events: broadcast::Sender<NodeEvent>,
) -> Result<(), rustls::Error> {
    let (client, mut eventloop) = AsyncClient::new(options(&url, &me)?, QUEUE);
    let mine = topic(&mesh, &me);
    let sender = BrokerSender { client: client.clone(), mesh, me };
    tokio::spawn(async move {
        let mut up = false;
        let mut backoff = BACKOFF_MIN;
        let mut budget = Budget::new();
        let report = |connected: bool, error: Option<String>| {
            let _ = events.send(NodeEvent::Broker { url: url.shown.clone(), connected, error });
        };
        loop {
            let event = tokio::select! {
                e = eventloop.poll() => e,
                () = to_actor.closed() => return, // the node stopped
            };
            let failure = match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = BACKOFF_MIN;
                    // The request queue is empty right after a connect; should it not be, the
                    // missing SubAck shows as a broker that never comes up.
                    let _ = client.try_subscribe(mine.clone(), QoS::AtLeastOnce);
                    None
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.iter().all(|c| matches!(c, SubscribeReasonCode::Success(_))) {
                        up = true;
                        router.set_broker(Some(sender.clone()));
                        let _ = to_actor.send(ToActor::Input(Input::SignalBroker { up: true })).await;
                        report(true, None);
                        None
                    } else {
                        Some(format!("the broker refused the subscription to {mine}"))
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    // Only envelopes for us, on our topic, at a bounded rate: the broker routes
                    // by topic, so anything else here is someone using us as a relay, and
                    // anyone on the broker can publish to us.
                    let ours = p.topic == mine && Envelope::decode(&p.payload).is_ok_and(|e| e.to == me);
                    if !ours {
                        router.misaddressed.fetch_add(1, Ordering::Relaxed);
                    } else if !budget.take() {
                        router.throttled.fetch_add(1, Ordering::Relaxed);
                    } else if to_actor.send(ToActor::Input(Input::Signal { data: p.payload.to_vec() })).await.is_err() {
                        return;
                    }
                    None
                }
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            };
            let Some(error) = failure else { continue };
            if up {
                up = false;
                router.set_broker(None);
                let _ = to_actor.send(ToActor::Input(Input::SignalBroker { up: false })).await;
            }
            report(false, Some(error));
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = to_actor.closed() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    });
    Ok(())
}

/// Envelopes taken from the broker per second, and the burst allowed above it.
const RATE: f64 = 100.0;
const BURST: f64 = 200.0;

/// A token bucket for what arrives from the broker.
struct Budget {
    tokens: f64,
    at: tokio::time::Instant,
}

impl Budget {
    fn new() -> Self {
        Budget { tokens: BURST, at: tokio::time::Instant::now() }
    }

    fn take(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        self.tokens = (self.tokens + (now - self.at).as_secs_f64() * RATE).min(BURST);
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_transport_port_and_credentials_and_bad_ones_say_why() {
        let u: BrokerUrl = "mqtt://broker.example:1884".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port, u.websocket.is_none(), u.tls), ("broker.example", 1884, true, false));
        let u: BrokerUrl = "mqtts://alice:secret@broker.example".parse().unwrap();
        assert_eq!((u.port, u.tls), (8883, true));
        assert_eq!(u.credentials, Some(("alice".into(), "secret".into())));
        assert!(!u.shown.contains("secret"), "the password is not shown: {}", u.shown);
        let u: BrokerUrl = "wss://bob:pw@broker.example/mqtt".parse().unwrap();
        assert_eq!(u.websocket.as_deref(), Some("wss://broker.example/mqtt"), "credentials go in CONNECT");
        let u: BrokerUrl = "ws://127.0.0.1:9001/mqtt".parse().unwrap();
        assert_eq!(u.websocket.as_deref(), Some("ws://127.0.0.1:9001/mqtt"));
        assert!(matches!("http://x".parse::<BrokerUrl>(), Err(MqttUrlError::Scheme(_))));
        assert!(matches!("not a url".parse::<BrokerUrl>(), Err(MqttUrlError::Parse(..))));
        assert!(topic_safe("default") && topic_safe("team-α"));
        assert!(!topic_safe("a/b") && !topic_safe("+") && !topic_safe("x#") && !topic_safe(""));
    }
}
