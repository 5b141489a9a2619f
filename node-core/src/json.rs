//! The JSON vocabulary of events (DESIGN.md "Interfaces"), shared by the `weft --json` CLI, the
//! browser node's `onEvent` and every test that reads them (feature `json`). Field names are a
//! stable contract: add, never rename.

use crate::{Event, MeshMap, PeerSummary};
use serde_json::{json, Value};

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The JSON form of a core event (`None` for events that have none; today every event has one).
pub fn event(e: &Event) -> Option<Value> {
    Some(match e {
        Event::PeerDiscovered { peer, name, addr } => {
            json!({"event": "peer_discovered", "peer_id": peer.to_string(), "name": name, "addr": addr.to_string()})
        }
        Event::PeerConnected { peer, name, kind, addr, direction } => json!({
            "event": "peer_connected", "peer_id": peer.to_string(), "name": name, "link": kind.as_str(),
            "addr": addr.to_string(), "direction": format!("{direction:?}").to_lowercase(),
        }),
        Event::PeerDisconnected { peer, reason } => {
            json!({"event": "peer_disconnected", "peer_id": peer.to_string(), "reason": reason})
        }
        Event::Chat { from, from_name, text, msg_id } => json!({
            "event": "chat", "from": from.to_string(), "from_name": from_name, "text": text, "msg_id": msg_id.to_string(),
        }),
        Event::Direct { from, text, msg_id } => {
            json!({"event": "direct", "from": from.to_string(), "text": text, "msg_id": msg_id.to_string()})
        }
        Event::TransferOffered { transfer_id, from, name, size, chunk_size, file } => json!({
            "event": "transfer_offered", "transfer_id": transfer_id.to_string(), "from": from.to_string(),
            "name": name, "size": size, "chunk_size": chunk_size, "blake3": hex(&file.0),
        }),
        // `command` as text: command ids are u64, past what a JavaScript number holds exactly.
        Event::TransferStarted { transfer_id, to, command } => json!({
            "event": "transfer_started", "transfer_id": transfer_id.to_string(), "to": to.to_string(),
            "command": command.0.to_string(),
        }),
        Event::TransferProgress { transfer_id, done, total } => {
            json!({"event": "transfer_progress", "transfer_id": transfer_id.to_string(), "done": done, "total": total})
        }
        Event::TransferSent { transfer_id, to, sent, total, complete } => json!({
            "event": "transfer_sent", "transfer_id": transfer_id.to_string(), "to": to.to_string(),
            "sent": sent, "total": total, "complete": complete,
        }),
        Event::TransferDone { transfer_id, from, path, size, file } => json!({
            "event": "transfer_done", "transfer_id": transfer_id.to_string(), "from": from.to_string(),
            "path": path, "size": size, "blake3": hex(&file.0),
        }),
        Event::TransferFailed { transfer_id, reason } => {
            json!({"event": "transfer_failed", "transfer_id": transfer_id.to_string(), "reason": reason})
        }
        Event::LinkRefused { peer, reason } => {
            json!({"event": "link_refused", "peer_id": peer.to_string(), "reason": reason})
        }
        Event::PeerMisbehaved { peer, reason } => {
            json!({"event": "peer_misbehaved", "peer_id": peer.to_string(), "reason": reason})
        }
        Event::Connectivity { peer, report } => json!({
            "event": "connectivity", "peer_id": peer.to_string(), "role": report.role,
            "linked": report.linked.map(|s| s.as_str()), "failure": report.failure,
            "steps": report.steps, "took_ms": report.took_ms,
        }),
        Event::NameResolved { server, name, answer, .. } => json!({
            "event": "name_resolved", "name": name.to_string(), "server_key": server.to_string(),
            "found": answer.is_some(),
            "owner": answer.as_ref().map(|a| a.record.record.owner.to_string()),
            "expires_unix": answer.as_ref().map(|a| a.expires_unix_ms / 1000),
        }),
        Event::NatDetected { report } => json!({
            "event": "nat", "type": report.nat_type.as_str(), "public": report.public.map(|a| a.to_string()),
            "mapping": report.mapping, "filtering": report.filtering,
            "allocation": report.allocation.map(|a| match a {
                crate::nat::PortAllocation::FixedDelta(d) => json!({"kind": a.kind(), "delta": d}),
                _ => json!({"kind": a.kind()}),
            }),
            "exact": report.exact,
        }),
    })
}

/// The `doctor` answer: the link, an attempt under way, and the last attempt's report with a
/// readable summary.
pub fn diagnosis(d: &crate::Diagnosis) -> Value {
    let report = d.report.as_ref().map(|r| {
        json!({"role": r.role, "linked": r.linked.map(|s| s.as_str()), "failure": r.failure,
               "steps": r.steps, "took_ms": r.took_ms, "summary": r.summary()})
    });
    json!({
        "event": "doctor", "peer_id": d.peer.to_string(),
        "link": d.link.as_ref().and_then(|l| l.kind).map(|k| k.as_str()),
        "addr": d.link.as_ref().and_then(|l| l.addr).map(|a| a.to_string()),
        "rtt_ms": d.link.as_ref().and_then(|l| l.rtt).map(|r| r.as_millis() as u64),
        "attempt_running": d.attempt_running,
        "report": report,
    })
}

/// The `peers` answer.
pub fn peers(list: &[PeerSummary]) -> Value {
    let items: Vec<Value> = list
        .iter()
        .map(|p| {
            json!({
                "peer_id": p.peer.to_string(), "name": p.name, "link": p.kind.map(|k| k.as_str()),
                "addr": p.addr.map(|a| a.to_string()), "rtt_ms": p.rtt.map(|r| r.as_secs_f64() * 1000.0),
            })
        })
        .collect();
    json!({"event": "peers", "list": items})
}

/// The `map` answer: `nodes` (this node first) and `links` (`link` is null where only a
/// neighbour's word says the link exists).
pub fn mesh_map(map: &MeshMap) -> Value {
    let nodes: Vec<Value> =
        map.nodes.iter().map(|(peer, name)| json!({"peer_id": peer.to_string(), "name": name})).collect();
    let links: Vec<Value> = map
        .links
        .iter()
        .map(|(a, b, kind)| json!({"a": a.to_string(), "b": b.to_string(), "link": kind.map(|k| k.as_str())}))
        .collect();
    json!({"event": "map", "nodes": nodes, "links": links})
}

/// An `error` event.
pub fn error(code: &str, message: &str) -> Value {
    json!({"event": "error", "code": code, "message": message})
}
