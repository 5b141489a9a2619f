// The Weft browser node's JavaScript API: start(options), chat(text), sendFile(peer, file),
// receivedFiles(), peers(), meshMap(), onEvent(callback), stop(). Links to other nodes are WebRTC data
// channels, set up through the serving host's `/v1/signal` or through peers already linked.
// Events are the same JSON objects `weft --json` prints. The identity (an Ed25519 secret) lives
// in IndexedDB, so a reload keeps the same PeerId; files (web/files.js) are stored there too.
import init, { WasmNode } from './pkg/node_wasm.js';
import { IDENTITY, run } from './db.js';
import * as files from './files.js';

const SECRET_KEY = 'secret';

async function loadSecret() {
  const value = await run(IDENTITY, 'readonly', (s) => s.get(SECRET_KEY));
  return value ? new Uint8Array(value) : new Uint8Array();
}

async function saveSecret(secret) {
  await run(IDENTITY, 'readwrite', (s) => s.put(secret, SECRET_KEY));
}

let node = null;
let info = null;
let starting = null;
const listeners = new Set();

function emit(event) {
  for (const listener of listeners) {
    try {
      listener(event);
    } catch (e) {
      console.error('weft: an onEvent callback threw', e);
    }
  }
}

function running() {
  if (!node) throw new Error('weft is not started: call start() first');
  return node;
}

/** The same-origin signaling socket: `/v1/signal` of whoever served this page. */
function defaultSignalUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/v1/signal`;
}

let hostInfoOnce = null;

/**
 * What served this page says about itself (`/v1/info`): a bootstrap server (`stun`, `public_key`)
 * or a native node (`kind: "node"`, `peer_id`, `name`, `mesh`). Resolves to `null` when there is
 * no such endpoint (a plain file server). Fetched once.
 */
export function hostInfo() {
  hostInfoOnce ??= fetch('/v1/info', { cache: 'no-store' })
    .then((res) => (res.ok ? res.json() : null))
    .catch(() => null);
  return hostInfoOnce;
}

/**
 * ICE servers: the serving host's STUN responder when it has one (a bootstrap server says so
 * in /v1/info); none otherwise (on a LAN, host candidates are all it takes). Never a third party.
 */
async function defaultIceServers() {
  const info = await hostInfo();
  return info?.stun ? [{ urls: `stun:${location.hostname}:${info.stun.port}` }] : [];
}

/**
 * Starts the node; resolves to `{peerId, name, mesh}`. Options: `name`, `mesh`, `signal` (a
 * websocket URL; default this origin's `/v1/signal`, `null` for none), `mqtt` (an MQTT broker's
 * websocket URL, `ws(s)://host/path`, to signal through as well) and `iceServers`.
 */
export function start({ name = 'browser', mesh = 'default', signal, mqtt, iceServers } = {}) {
  if (node || starting) return starting ?? Promise.resolve(info);
  starting = (async () => {
    await init();
    const secret = await loadSecret();
    const created = new WasmNode(name, mesh, secret);
    if (secret.length === 0) await saveSecret(created.secret);
    node = created;
    info = { peerId: node.peerId, name, mesh };
    node.setFiles(files.storage);
    emit({ event: 'ready', peer_id: node.peerId, name, mesh });
    node.onEvent(onNodeEvent);
    // Offers a reload interrupted: made again, so each receiver fetches only what it lacks.
    for (const o of await files.pendingOutgoing()) {
      try {
        offer(o, true);
      } catch (err) {
        // An entry the node refuses now (say, a malformed peer id) must not stop the page.
        emit({ event: 'error', code: 'resume', message: `cannot resume sending ${o.name}: ${err.message ?? err}` });
        files.forgetOutgoing(o.peer, o.blake3, false).catch(() => {});
      }
    }
    const url = signal === undefined ? defaultSignalUrl() : signal;
    const ice = iceServers ?? (await defaultIceServers());
    if (url) node.connectSignal(url, ice);
    if (mqtt) node.connectMqtt(mqtt, ice);
    return info;
  })().finally(() => {
    starting = null;
  });
  return starting;
}

/** Our offers, by transfer id: which stored offer each one is (forgotten once finished). */
const outgoing = new Map();

/** Events from the node: files bookkeeping first, then the page's listeners. */
function onNodeEvent(e) {
  switch (e.event) {
    case 'transfer_offered':
      accept(e);
      break;
    case 'transfer_sent':
      if (e.complete) finishOutgoing(e.transfer_id);
      break;
    case 'transfer_failed':
      finishOutgoing(e.transfer_id);
      break;
  }
  emit(e);
}

/** Offers being accepted (the core repeats an offer the sender re-sends while it is pending). */
const accepting = new Set();

/** Offers are taken when the browser has room, resuming from the chunks already stored. */
async function accept(e) {
  const key = `${e.from}/${e.transfer_id}`;
  if (accepting.has(key)) return;
  accepting.add(key);
  const n = node;
  try {
    if (!(await files.roomFor(e.size))) {
      emit({ event: 'error', code: 'storage', message: `no room in this browser for ${e.name} (${e.size} bytes)` });
      n.declineOffer(e.from, e.transfer_id, 'the receiving page has no room for it');
      return;
    }
    const have = await files.storedChunks(e.blake3, e.size, e.chunk_size);
    if (node === n) n.acceptOffer(e.from, e.transfer_id, have);
  } catch (err) {
    // Taken already, or the node stopped meanwhile: nothing to undo.
    if (node === n) console.warn(`weft: offer ${e.transfer_id}: ${err.message ?? err}`);
  } finally {
    accepting.delete(key);
  }
}

function finishOutgoing(transferId) {
  const o = outgoing.get(transferId);
  if (!o) return;
  outgoing.delete(transferId);
  const stillOffered = [...outgoing.values()].some((x) => x.blake3 === o.blake3);
  files.forgetOutgoing(o.peer, o.blake3, stillOffered).catch((err) => console.error('weft: forgetting a finished offer', err));
}

/**
 * Offers a stored entry; returns `{transferId}` (from the `transfer_started` it caused), and
 * tells listeners at once with a `transfer_offering` event {transfer_id, to, name, size, blake3,
 * resumed} — before any progress on it can arrive.
 */
function offer(entry, resumed = false) {
  const started = [];
  const off = onEvent((e) => { if (e.event === 'transfer_started') started.push(e); });
  let transferId;
  try {
    const command = running().offerFile(entry.peer, entry.name, entry.size, entry.blake3, entry.chunkHashes);
    transferId = started.find((e) => e.command === command)?.transfer_id;
  } finally {
    off();
  }
  if (transferId) {
    outgoing.set(transferId, entry);
    const { peer: to, name, size, blake3 } = entry;
    emit({ event: 'transfer_offering', transfer_id: transferId, to, name, size, blake3, resumed });
  }
  return { transferId };
}

/**
 * Sends `file` (a File or Blob) to `peer` (a PeerId): hashes it (`transfer_hashing` events with
 * `done`/`total`), then offers it. Resolves to `{transferId, blake3}`; progress follows as
 * `transfer_sent` events, and `complete: true` once the receiver has verified the whole file.
 * The offer survives a reload of this page until then.
 */
export async function sendFile(peer, file) {
  const n = running();
  if (!(file instanceof Blob)) throw new Error('sendFile needs a File or Blob');
  const name = file.name ?? 'file';
  const { blake3, chunkHashes } = await files.hashFile(file, n.chunkSize, (done) =>
    emit({ event: 'transfer_hashing', to: peer, name, done, total: file.size }));
  const entry = { peer: String(peer), name, size: file.size, blake3, chunkHashes, blob: file };
  if (node !== n) throw new Error('weft was stopped while the file was being hashed');
  files.serve(blake3, file);
  const { transferId } = offer(entry);
  try {
    await files.rememberOutgoing(entry);
  } catch (err) {
    // The transfer goes on; only a reload would lose it.
    emit({ event: 'error', code: 'storage', message: `${name} is being sent but will not resume after a reload: ${err.message ?? err}` });
  }
  return { transferId, blake3 };
}

/** Files received and verified, newest first: `[{blake3, name, size, blob, at}]`. */
export function receivedFiles() {
  return files.receivedFiles();
}

/** Broadcasts a chat message to the mesh. */
export function chat(text) {
  running().chat(String(text));
}

/**
 * What this node knows of its connectivity to a PeerId: `{peer_id, link, addr, rtt_ms,
 * attempt_running, report}` (the `doctor` answer of `weft --json`).
 */
export function doctor(peerId) {
  return running().doctor(String(peerId).trim());
}

/** Links to the node with this PeerId over WebRTC, through whichever signaling reaches it. */
export function connectPeer(peerId) {
  running().connectPeer(String(peerId).trim());
}

/** The linked peers: `[{peer_id, name, link, addr, rtt_ms}]`. */
export function peers() {
  return node ? node.peers() : [];
}

/** The mesh as this node sees it: `{nodes: [{peer_id, name}], links: [{a, b, link}]}`. */
export function meshMap() {
  return node ? node.meshMap() : { nodes: [], links: [] };
}

/** Calls `callback(event)` for every event; returns a function that unsubscribes. */
export function onEvent(callback) {
  listeners.add(callback);
  return () => listeners.delete(callback);
}

/** Stops the node (start() may be called again). */
export function stop() {
  if (!node) return;
  node.stop();
  node.free();
  node = null;
  info = null;
  emit({ event: 'stopped' });
}

/** This node's PeerId, or null before start(). */
export function peerId() {
  return node ? node.peerId : null;
}
