//! Human names through the bootstrap server, and through the mesh when the server is out of
//! reach: every answer the server gives is mirrored into the DHT ([`Command::MirrorName`]), and a
//! lookup the server cannot answer asks the DHT for the same server's answer, checked against the
//! key pinned for it. A server that answers (even "nobody holds it") is always believed over the
//! mesh.

use crate::bootstrap::{BootstrapError, NameValue};
use crate::handle::{ActorCommand, NodeHandle, RequestError};
use node_core::names::{Name, NameAnswer};
use node_core::{Command, PeerId};
use std::time::Duration;
use tokio::sync::oneshot;

/// Longest a lookup in the DHT may take. The DHT ends every lookup by itself (each request
/// times out, and a lookup sends a bounded number); this only guards against a node that stops.
const MESH_LOOKUP_LIMIT: Duration = Duration::from_secs(30);

/// Where a name's answer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameSource {
    /// The bootstrap server answered.
    Server,
    /// The server could not be reached (`server_error` says why); a peer in the mesh held the
    /// server's signed answer, still within the time the server vouched for it.
    Mesh {
        /// Why the server did not answer.
        server_error: String,
    },
}

/// A name's answer, checked against the pinned server key, and where it came from.
#[derive(Debug, Clone)]
pub struct ResolvedName {
    /// The server's answer.
    pub answer: NameAnswer,
    /// Who gave it to us.
    pub source: NameSource,
}

/// Whether `e` means we got no answer from the server at all (no connection, no DNS, a timeout,
/// a server error, or a reply that is not the API's: a proxy's page), as opposed to its "no" or
/// an answer that does not check out: only then is the mesh asked.
fn unreachable(e: &BootstrapError) -> bool {
    match e {
        BootstrapError::Http(_) | BootstrapError::Resolve(_) => true,
        BootstrapError::Refused { status, .. } => *status >= 500,
        _ => false,
    }
}

impl NodeHandle {
    /// Claims (or bumps) `name` on the bootstrap server, pointing it at this node, and mirrors
    /// the server's answer into the mesh.
    pub async fn claim_name(&self, name: &str) -> Result<NameAnswer, RequestError> {
        let bs = self.bootstrap()?;
        let name = Name::parse(name).map_err(|e| RequestError::BadName(name.to_owned(), e))?;
        // The address the server last saw us at (known after the first announcement) comes first.
        let value = NameValue { peer_id: self.peer_id, addrs: bs.reachable_addrs() }.encode();
        let answer = bs.client.claim(&name, value, &bs.keys, crate::bootstrap::now_ms()).await?;
        self.mirror(&answer).await;
        Ok(answer)
    }

    /// Looks `name` up on the bootstrap server (signatures checked against the pinned key), or,
    /// when the server cannot be reached, in the mesh.
    pub async fn lookup_name(&self, name: &str) -> Result<ResolvedName, RequestError> {
        let bs = self.bootstrap()?;
        let parsed = Name::parse(name).map_err(|e| RequestError::BadName(name.to_owned(), e))?;
        match bs.client.lookup(&parsed).await {
            Ok(Some(answer)) => {
                self.mirror(&answer).await;
                Ok(ResolvedName { answer, source: NameSource::Server })
            }
            Ok(None) => {
                // Deleted, or expired: our copy, if any, is not to be stored again.
                if let Some(server) = bs.client.known_key() {
                    let forget = Command::ForgetName { server, name: parsed };
                    if let Err(e) = self.command(forget).await {
                        tracing::debug!("could not drop the mesh copy of {name}: {e}");
                    }
                }
                Err(RequestError::NameNotFound(name.to_owned()))
            }
            Err(e) if unreachable(&e) => {
                // Only a key pinned before (or given by flag) can vouch for an answer from the
                // mesh; without one there is nothing to check it against.
                let Some(server) = bs.client.known_key() else { return Err(e.into()) };
                match self.lookup_in_mesh(server, parsed).await {
                    Ok(Some(answer)) => {
                        let source = NameSource::Mesh { server_error: e.to_string() };
                        Ok(ResolvedName { answer, source })
                    }
                    // Nobody had it, or the node had no lookup slot free: the server's failure
                    // is what the user needs to hear.
                    Ok(None) | Err(RequestError::Command(_)) => {
                        Err(RequestError::NameUnavailable { name: name.to_owned(), server_error: Box::new(e) })
                    }
                    Err(other) => Err(other),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Resolves `name` (see [`lookup_name`](Self::lookup_name)) and dials the node it points to,
    /// expecting exactly that node's key at the other end. Returns whom it dials.
    pub async fn connect_name(&self, name: &str) -> Result<PeerId, RequestError> {
        let answer = self.lookup_name(name).await?.answer;
        let value =
            NameValue::decode(&answer.record.record.value).ok_or_else(|| RequestError::NotANode(name.to_owned()))?;
        let addr = *value.addrs.first().ok_or_else(|| RequestError::NotANode(name.to_owned()))?;
        self.command(Command::Connect { addr, expect: Some(value.peer_id) }).await?;
        Ok(value.peer_id)
    }

    /// Hands a server's answer to the node to keep in the DHT. The answer is the user's already;
    /// failing to mirror it (the node busy, or stopping) is logged, not theirs to handle.
    async fn mirror(&self, answer: &NameAnswer) {
        if let Err(e) = self.command(Command::MirrorName { answer: Box::new(answer.clone()) }).await {
            tracing::warn!("name {} not mirrored into the mesh: {e}", answer.record.record.name);
        }
    }

    /// Asks the DHT for `server`'s answer for `name`.
    async fn lookup_in_mesh(&self, server: PeerId, name: Name) -> Result<Option<NameAnswer>, RequestError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(ActorCommand::LookupName(server, name, tx)).await.map_err(|_| RequestError::Stopped)?;
        match tokio::time::timeout(MESH_LOOKUP_LIMIT, rx).await {
            Ok(reply) => Ok(reply.map_err(|_| RequestError::Stopped)??),
            Err(_) => Ok(None),
        }
    }
}
