//! The HTTP client of a bootstrap server: announce, live peers, trusted nodes, names. Every
//! server statement is checked against the server key pinned on first contact (or given by the
//! operator): a server that changes keys is refused, not believed.

use super::pins::{PinError, Pins};
use node_core::identity::Keypair;
use node_core::names::{AnswerError, Name, NameAnswer, NameRecord, SignedNameRecord};
use node_core::nat::probe::StunTarget;
use node_core::presence::{AnnounceReply, LivePeer, PeerList, Presence, ServerSigned, StatementError, TrustedList};
use node_core::PeerId;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::sync::Mutex;
use std::time::Duration;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why talking to the bootstrap server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// The URL is not `http://` or `https://`.
    #[error("bootstrap URL {0:?} must start with http:// or https://")]
    BadUrl(String),
    /// The server could not be reached or answered garbage.
    #[error("bootstrap server unreachable: {0}")]
    Http(#[from] reqwest::Error),
    /// The server refused, with its error code.
    #[error("the bootstrap server refused ({code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The server's stable error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The server's key is not the pinned one, or a statement's signature is bad.
    #[error("bootstrap server not trusted: {0}")]
    Untrusted(String),
    /// The pin file could not be read or written.
    #[error(transparent)]
    Pins(#[from] PinError),
    /// The server's host name did not resolve.
    #[error("cannot resolve the bootstrap server's host: {0}")]
    Resolve(#[from] std::io::Error),
}

impl From<StatementError> for BootstrapError {
    fn from(e: StatementError) -> Self {
        BootstrapError::Untrusted(e.to_string())
    }
}

impl From<AnswerError> for BootstrapError {
    fn from(e: AnswerError) -> Self {
        BootstrapError::Untrusted(e.to_string())
    }
}

#[derive(Deserialize)]
struct Info {
    public_key: PeerId,
    #[serde(default)]
    stun: Option<StunInfo>,
}

#[derive(Deserialize)]
struct StunInfo {
    port: u16,
    #[serde(default)]
    alt_port: Option<u16>,
    #[serde(default)]
    alt_ip: Option<std::net::IpAddr>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

/// A bootstrap server, as one node talks to it.
pub struct BootstrapClient {
    base: String,
    http: reqwest::Client,
    pins: Pins,
    /// The key every statement must be signed with, once known.
    key: Mutex<Option<PeerId>>,
}

impl BootstrapClient {
    /// A client of the server at `url`, pinning its key in `pins` (or requiring `expected_key`).
    pub fn new(url: &str, pins: Pins) -> Result<Self, BootstrapError> {
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(BootstrapError::BadUrl(url.to_owned()));
        }
        let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
        Ok(BootstrapClient { base, http, pins, key: Mutex::new(None) })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The server key, fetched and pinned on first use.
    pub async fn server_key(&self) -> Result<PeerId, BootstrapError> {
        if let Some(k) = *self.key.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(k);
        }
        let info: Info = self.get("/v1/info").await?;
        let key = self.pins.check_or_pin(&self.base, info.public_key)?;
        *self.key.lock().unwrap_or_else(|e| e.into_inner()) = Some(key);
        Ok(key)
    }

    /// The server's key as far as known without asking it: met this run, pinned before, or given
    /// by flag.
    pub fn known_key(&self) -> Option<PeerId> {
        let met = *self.key.lock().unwrap_or_else(|e| e.into_inner());
        met.or_else(|| self.pins.known(&self.base))
    }

    /// The server's STUN responder as an ICE server URL (`stun:host:port`), if it runs one.
    pub async fn stun_url(&self) -> Result<Option<String>, BootstrapError> {
        let info: Info = self.get("/v1/info").await?;
        let host = reqwest::Url::parse(&self.base).ok().and_then(|u| u.host_str().map(str::to_owned));
        Ok(match (info.stun, host) {
            (Some(stun), Some(host)) => Some(format!("stun:{host}:{}", stun.port)),
            _ => None,
        })
    }

    /// The server's STUN responder as the NAT probe's target (its host name resolved), if it
    /// runs one.
    pub async fn stun_target(&self) -> Result<Option<StunTarget>, BootstrapError> {
        let info: Info = self.get("/v1/info").await?;
        let Some(stun) = info.stun else { return Ok(None) };
        let url = reqwest::Url::parse(&self.base).map_err(|_| BootstrapError::BadUrl(self.base.clone()))?;
        let Some(host) = url.host_str() else { return Ok(None) };
        // An IPv6 literal comes bracketed.
        let ip = match host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
            Ok(ip) => ip,
            Err(_) => match tokio::net::lookup_host((host, stun.port)).await?.next() {
                Some(addr) => addr.ip(),
                None => return Ok(None),
            },
        };
        Ok(Some(StunTarget {
            primary: std::net::SocketAddr::new(ip, stun.port),
            alt_port: stun.alt_port,
            alt_ip: stun.alt_ip,
        }))
    }

    async fn answer<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, BootstrapError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.json().await?);
        }
        let body: Option<ErrorBody> = resp.json().await.ok();
        let (code, message) = body.map_or_else(|| ("http".into(), status.to_string()), |b| (b.code, b.message));
        Err(BootstrapError::Refused { status: status.as_u16(), code, message })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, BootstrapError> {
        Self::answer(self.http.get(format!("{}{path}", self.base)).send().await?).await
    }

    /// Announces `presence` (signed with `keys`).
    pub async fn announce(&self, presence: Presence, keys: &Keypair) -> Result<AnnounceReply, BootstrapError> {
        self.server_key().await?;
        let resp = self.http.post(format!("{}/v1/announce", self.base)).json(&presence.sign(keys)).send().await?;
        Self::answer(resp).await
    }

    /// The live peers of `mesh`, checked against the pinned key.
    pub async fn peers(&self, mesh: &str) -> Result<Vec<LivePeer>, BootstrapError> {
        let key = self.server_key().await?;
        let resp = self.http.get(format!("{}/v1/peers", self.base)).query(&[("mesh", mesh)]).send().await?;
        let list: ServerSigned<PeerList> = Self::answer(resp).await?;
        let data = list.verify(&key)?;
        if data.mesh_id != mesh {
            return Err(BootstrapError::Untrusted(format!("asked for mesh {mesh:?}, got {:?}", data.mesh_id)));
        }
        // Each entry is the peer's own signed word too; drop any that is not.
        Ok(list.data.peers.into_iter().filter(|p| p.presence.verify().is_ok()).collect())
    }

    /// The nodes the server's operator trusts.
    pub async fn trusted(&self) -> Result<Vec<PeerId>, BootstrapError> {
        let key = self.server_key().await?;
        let list: ServerSigned<TrustedList> = self.get("/v1/trusted").await?;
        list.verify(&key)?;
        Ok(list.data.peers)
    }

    /// Looks `name` up; `None` if nobody holds it.
    pub async fn lookup(&self, name: &Name) -> Result<Option<NameAnswer>, BootstrapError> {
        let key = self.server_key().await?;
        match self.get::<NameAnswer>(&format!("/v1/names/{name}")).await {
            Ok(answer) => {
                answer.verify(&key)?;
                if answer.record.record.name != *name {
                    return Err(BootstrapError::Untrusted(format!(
                        "asked for {name}, got {}",
                        answer.record.record.name
                    )));
                }
                Ok(Some(answer))
            }
            Err(BootstrapError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Claims (or bumps) `name` for `keys`, mapping it to `value`.
    pub async fn claim(
        &self,
        name: &Name,
        value: Vec<u8>,
        keys: &Keypair,
        now_ms: u64,
    ) -> Result<NameAnswer, BootstrapError> {
        let key = self.server_key().await?;
        // A seq above both the stored one and the clock: increasing across restarts and devices.
        let stored = self.lookup(name).await?.map_or(0, |a| a.record.record.seq);
        let record = NameRecord {
            name: name.clone(),
            value,
            owner: keys.peer_id(),
            seq: now_ms.max(stored + 1),
            unix_ms: now_ms,
            delete: false,
        };
        let signed: SignedNameRecord = record.sign(keys);
        let resp = self.http.put(format!("{}/v1/names/{name}", self.base)).json(&signed).send().await?;
        let answer: NameAnswer = Self::answer(resp).await?;
        answer.verify(&key)?;
        if answer.record != signed {
            return Err(BootstrapError::Untrusted("the server stored something other than what we signed".into()));
        }
        Ok(answer)
    }
}
