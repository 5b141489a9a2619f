// The page: join form, peers, chat, files. It drives the node only through the JS API, which it also
// exposes as `window.weft` for scripts and tests.
import * as weft from './weft.js';
import { drawMap } from './map.js';

window.weft = weft;

const $ = (id) => document.getElementById(id);

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

function logLine(text, cls) {
  const li = document.createElement('li');
  li.textContent = text; // textContent: peers' text is never parsed as HTML
  if (cls) li.className = cls;
  $('log').append(li);
  li.scrollIntoView({ block: 'nearest' });
}

const MiB = 1024 * 1024;
const mib = (n) => (n / MiB).toFixed(1);

function renderPeers() {
  const list = weft.peers();
  const ul = $('peers');
  ul.replaceChildren();
  if (list.length === 0) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = 'no peers yet';
    ul.append(li);
  }
  for (const p of list) {
    const li = document.createElement('li');
    li.dataset.peer = p.peer_id;
    const rtt = p.rtt_ms == null ? '' : ` · ${p.rtt_ms.toFixed(1)} ms`;
    const label = document.createElement('span');
    label.textContent = `${p.name} (${p.peer_id.slice(0, 8)}) · ${p.link ?? '?'}${rtt}`;
    // A file input per peer, dressed as a button: picking a file sends it.
    const pick = document.createElement('label');
    pick.className = 'send';
    pick.textContent = 'send file…';
    const input = document.createElement('input');
    input.type = 'file';
    input.hidden = true;
    input.addEventListener('change', () => {
      for (const file of input.files) sendFile(p, file);
      input.value = '';
    });
    pick.append(input);
    li.append(label, ' ', pick);
    ul.append(li);
  }
}

/** One row per transfer: name, peer, a progress bar and a status that ends in "verified". */
const transfers = new Map();

function transferRow(key, text) {
  let row = transfers.get(key);
  if (!row) {
    const li = document.createElement('li');
    const label = document.createElement('span');
    const bar = document.createElement('progress');
    bar.max = 1;
    bar.value = 0;
    const status = document.createElement('span');
    status.className = 'status';
    li.append(label, bar, status);
    $('transfers').append(li);
    row = { li, label, bar, status };
    transfers.set(key, row);
  }
  if (text) row.label.textContent = text;
  return row;
}

function progress(row, done, total, verb) {
  row.bar.value = total ? done / total : 1;
  row.status.textContent = `${verb} ${mib(done)} / ${mib(total)} MiB`;
}

function finished(row, ok, text) {
  row.bar.value = ok ? 1 : row.bar.value;
  row.status.textContent = text;
  row.li.className = ok ? 'verified' : 'failed';
}

/** A file being hashed has no transfer id yet: its row is keyed by peer, name and size. */
const hashingKey = (to, name, size) => `hash:${to}:${name}:${size}`;

async function sendFile(peer, file) {
  const row = transferRow(hashingKey(peer.peer_id, file.name, file.size), `${file.name} → ${peer.name}`);
  row.status.textContent = 'hashing…';
  try {
    await weft.sendFile(peer.peer_id, file);
  } catch (e) {
    finished(row, false, `not sent: ${e.message ?? e}`);
  }
}

/** Object URLs of the download links shown now, released when the list is redrawn. */
let downloadUrls = [];

async function renderReceived() {
  const list = await weft.receivedFiles();
  const ul = $('received');
  for (const url of downloadUrls) URL.revokeObjectURL(url);
  downloadUrls = [];
  ul.replaceChildren();
  for (const f of list) {
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = URL.createObjectURL(f.blob);
    downloadUrls.push(a.href);
    a.download = f.name;
    a.textContent = f.name;
    li.append(a, ` · ${mib(f.size)} MiB · verified ✓`);
    ul.append(li);
  }
}

function renderMap() {
  drawMap($('map'), weft.meshMap());
}
// Neighbours report their links in periodic peer exchanges; catch up with them.
setInterval(() => { if (!$('node').hidden) renderMap(); }, 3000);

const peerName = (id) => weft.peers().find((p) => p.peer_id === id)?.name ?? id.slice(0, 8);

weft.onEvent((e) => {
  switch (e.event) {
    case 'ready':
      $('me').textContent = `${e.name} · ${e.peer_id}`;
      $('status').textContent = `joined mesh "${e.mesh}" as ${e.peer_id.slice(0, 8)}`;
      break;
    case 'peer_connected':
    case 'peer_disconnected':
      renderPeers();
      renderMap();
      break;
    case 'chat':
      logLine(`${e.from_name}: ${e.text}`);
      break;
    case 'stopped':
      $('status').textContent = 'not joined';
      break;
    case 'signaling':
      if (e.state === 'connected') {
        $('signal').textContent = `signaling: connected (${e.peers} online)`;
      } else if (e.state === 'stopped') {
        $('signal').textContent = `signaling stopped: ${e.reason}; links already up keep working (reload to sign in again)`;
      } else {
        $('signal').textContent = `signaling ${e.state === 'lost' ? 'lost' : 'unavailable'}: retrying in ${Math.round(e.retry_ms / 1000)} s; links already up keep working`;
      }
      $('signal').className = e.state === 'connected' ? 'ok' : 'warn';
      break;
    case 'mqtt':
      $('mqtt').hidden = false;
      $('mqtt').textContent = e.connected
        ? `MQTT broker ${e.url}: connected`
        : `MQTT broker ${e.url}: ${e.error}; retrying in ${Math.round((e.retry_ms ?? 0) / 1000)} s`;
      $('mqtt').className = e.connected ? 'ok' : 'warn';
      break;
    case 'transfer_hashing':
      progress(transferRow(hashingKey(e.to, e.name, e.total)), e.done, e.total, 'hashing');
      break;
    case 'transfer_offering': {
      // The hashing row becomes the transfer's row (a resumed offer gets a new one).
      const key = hashingKey(e.to, e.name, e.size);
      const row = transfers.get(key) ?? transferRow(e.transfer_id, `${e.name} → ${peerName(e.to)}`);
      transfers.delete(key);
      transfers.set(e.transfer_id, row);
      row.status.textContent = e.resumed ? 'resuming after reload' : 'offered';
      break;
    }
    case 'transfer_sent': {
      const row = transferRow(e.transfer_id);
      if (e.complete) finished(row, true, 'sent · verified ✓');
      else progress(row, e.sent, e.total, 'sent');
      break;
    }
    case 'transfer_offered':
      transferRow(e.transfer_id, `${e.name} ← ${peerName(e.from)}`).status.textContent = 'starting';
      break;
    case 'transfer_progress':
      progress(transferRow(e.transfer_id), e.done, e.total, 'received');
      break;
    case 'transfer_done':
      finished(transferRow(e.transfer_id), true, 'received · verified ✓');
      renderReceived();
      break;
    case 'transfer_failed':
      finished(transferRow(e.transfer_id), false, `failed: ${e.reason}`);
      break;
    case 'link_refused':
      logLine(`${e.peer_id.slice(0, 8)} refused a link: ${e.reason}`, 'note');
      break;
    case 'error':
      showError(`${e.code}: ${e.message}`);
      break;
  }
});

$('join').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  showError('');
  $('status').textContent = 'joining…';
  try {
    const mqtt = form.get('mqtt')?.trim() || undefined;
    await weft.start({ name: form.get('name'), mesh: form.get('mesh'), mqtt });
    $('join').hidden = true;
    $('node').hidden = false;
    renderPeers();
    renderReceived();
    renderMap();
  } catch (e) {
    $('status').textContent = 'not joined';
    showError(`could not join: ${e.message ?? e}`);
  }
});

// `?mqtt=wss://broker/mqtt` fills in the broker, so a link can carry it.
const broker = new URLSearchParams(location.search).get('mqtt');
if (broker) $('join').elements.mqtt.value = broker;

$('link').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = ev.target.elements.peer;
  if (!input.value.trim()) return;
  try {
    weft.connectPeer(input.value);
    logLine(`linking to ${input.value.trim().slice(0, 8)}…`, 'self');
  } catch (e) {
    showError(`cannot link: ${e.message ?? e}`);
  }
});

/** The doctor's answer for a PeerId, as lines a person reads. */
function diagnosis(d) {
  const lines = [];
  if (d.link) lines.push(`linked over ${d.link}${d.rtt_ms != null ? `, ${d.rtt_ms} ms round trip` : ''}`);
  else if (d.attempt_running) lines.push('not linked yet: an attempt is under way');
  else lines.push('not linked');
  if (d.report) lines.push(...d.report.summary);
  return lines.join('\n');
}

$('doctor-button').addEventListener('click', () => {
  const peer = $('link').elements.peer.value.trim();
  try {
    $('doctor').textContent = diagnosis(weft.doctor(peer));
    $('doctor').hidden = false;
  } catch (e) {
    showError(`doctor: ${e.message ?? e}`);
  }
});

$('chat').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = ev.target.elements.text;
  if (!input.value.trim()) return;
  try {
    weft.chat(input.value);
    logLine(`you: ${input.value}`, 'self');
    input.value = '';
  } catch (e) {
    showError(`not sent: ${e.message ?? e}`);
  }
});

// A page served by a native node joins that node's mesh unless the user says otherwise.
weft.hostInfo().then((info) => {
  if (info?.kind !== 'node') return;
  const mesh = $('join').elements.mesh;
  if (mesh.value === mesh.defaultValue) mesh.value = info.mesh;
  $('host').textContent = `served by node ${info.name} (${info.peer_id.slice(0, 8)}) in mesh "${info.mesh}"`;
  $('host').hidden = false;
});

// Leaving the page says goodbye to every peer, so they drop this node at once.
window.addEventListener('pagehide', () => weft.stop());

$('leave').addEventListener('click', () => {
  weft.stop();
  $('node').hidden = true;
  $('join').hidden = false;
});
