// The Weft browser node's JavaScript API: start(options), chat(text), peers(), onEvent(callback),
// stop(). Links to other nodes are WebRTC data channels, set up through the serving host's
// `/v1/signal` or through peers already linked. Events are the same JSON objects `weft --json` prints. The identity (an Ed25519 secret)
// lives in IndexedDB, so a reload keeps the same PeerId.
import init, { WasmNode } from './pkg/node_wasm.js';

const DB_NAME = 'weft';
const STORE = 'identity';
const SECRET_KEY = 'secret';

function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function request(store, op) {
  return new Promise((resolve, reject) => {
    const req = op(store);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function loadSecret() {
  const db = await openDb();
  const value = await request(db.transaction(STORE).objectStore(STORE), (s) => s.get(SECRET_KEY));
  db.close();
  return value ? new Uint8Array(value) : new Uint8Array();
}

async function saveSecret(secret) {
  const db = await openDb();
  await request(db.transaction(STORE, 'readwrite').objectStore(STORE), (s) => s.put(secret, SECRET_KEY));
  db.close();
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
 * websocket URL; default this origin's `/v1/signal`, `null` for none) and `iceServers`.
 */
export function start({ name = 'browser', mesh = 'default', signal, iceServers } = {}) {
  if (node || starting) return starting ?? Promise.resolve(info);
  starting = (async () => {
    await init();
    const secret = await loadSecret();
    const created = new WasmNode(name, mesh, secret);
    if (secret.length === 0) await saveSecret(created.secret);
    node = created;
    info = { peerId: node.peerId, name, mesh };
    emit({ event: 'ready', peer_id: node.peerId, name, mesh });
    node.onEvent(emit);
    const url = signal === undefined ? defaultSignalUrl() : signal;
    if (url) node.connectSignal(url, iceServers ?? (await defaultIceServers()));
    return info;
  })().finally(() => {
    starting = null;
  });
  return starting;
}

/** Broadcasts a chat message to the mesh. */
export function chat(text) {
  running().chat(String(text));
}

/** The linked peers: `[{peer_id, name, link, addr, rtt_ms}]`. */
export function peers() {
  return node ? node.peers() : [];
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
