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
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
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
/// Room for the topic and MQTT's own header around an envelope.
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

/// The topic that reaches `peer` in `mesh`.
pub fn topic(mesh: &str, peer: &PeerId) -> String {
    format!("{ROOT}/{mesh}/{peer}")
}

/// The publishing side, as the signal router holds it.
#[derive(Clone)]
pub struct BrokerSender {
    client: AsyncClient,
    mesh: String,
}

impl BrokerSender {
    /// Queues `envelope` for `to`'s topic; false when the queue is full.
    pub fn publish(&self, to: &PeerId, envelope: Vec<u8>) -> bool {
        self.client.try_publish(topic(&self.mesh, to), QoS::AtLeastOnce, false, envelope).is_ok()
    }
}

fn options(url: &BrokerUrl, me: &PeerId) -> Result<MqttOptions, rustls::Error> {
    // Unique per process: a broker drops the older of two sessions with one client id.
    let id = format!("weft-{}-{:08x}", me.short(), rand::random::<u32>());
    let address = url.websocket.clone().unwrap_or_else(|| url.host.clone());
    let mut o = MqttOptions::new(id, address, url.port);
    let cap = MAX_ENVELOPE_LEN + PACKET_OVERHEAD;
    o.set_keep_alive(KEEPALIVE).set_clean_session(true).set_max_packet_size(cap, cap);
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
/// to our topic on every (re)connect, hands what arrives there to the actor, and tells the
/// router and the core whether the broker is reachable.
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
    let sender = BrokerSender { client: client.clone(), mesh };
    tokio::spawn(async move {
        let mut up = false;
        let mut backoff = BACKOFF_MIN;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if client.try_subscribe(mine.clone(), QoS::AtLeastOnce).is_err() {
                        continue; // the request queue is full: the next poll drains it
                    }
                    up = true;
                    backoff = BACKOFF_MIN;
                    router.set_broker(Some(sender.clone()));
                    let _ = to_actor.send(ToActor::Input(Input::SignalBroker { up: true })).await;
                    let _ = events.send(NodeEvent::Broker { url: url.shown.clone(), connected: true, error: None });
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if p.topic != mine {
                        continue;
                    }
                    // Only envelopes for us: the broker routes by topic, so anything else here
                    // is someone using us as a relay.
                    if !Envelope::decode(&p.payload).is_ok_and(|e| e.to == me) {
                        tracing::debug!("dropping an MQTT message that is not an envelope for us");
                        router.misaddressed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                    let data = p.payload.to_vec();
                    if to_actor.send(ToActor::Input(Input::Signal { data })).await.is_err() {
                        return; // the node stopped
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if up {
                        up = false;
                        router.set_broker(None);
                        let _ = to_actor.send(ToActor::Input(Input::SignalBroker { up: false })).await;
                    }
                    let error = Some(e.to_string());
                    let _ = events.send(NodeEvent::Broker { url: url.shown.clone(), connected: false, error });
                    if to_actor.is_closed() {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    });
    Ok(())
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
    }
}
