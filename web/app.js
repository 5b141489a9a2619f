// The page: join form, peers, chat. It drives the node only through the JS API, which it also
// exposes as `window.weft` for scripts and tests.
import * as weft from './weft.js';

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
    const rtt = p.rtt_ms == null ? '' : ` · ${p.rtt_ms.toFixed(1)} ms`;
    li.textContent = `${p.name} (${p.peer_id.slice(0, 8)}) · ${p.link ?? '?'}${rtt}`;
    ul.append(li);
  }
}

weft.onEvent((e) => {
  switch (e.event) {
    case 'ready':
      $('me').textContent = `${e.name} · ${e.peer_id}`;
      $('status').textContent = `joined mesh "${e.mesh}" as ${e.peer_id.slice(0, 8)}`;
      break;
    case 'peer_connected':
    case 'peer_disconnected':
      renderPeers();
      break;
    case 'chat':
      logLine(`${e.from_name}: ${e.text}`);
      break;
    case 'stopped':
      $('status').textContent = 'not joined';
      break;
    case 'signaling':
      $('signal').textContent =
        e.state === 'connected'
          ? `signaling: connected (${e.peers} online)`
          : `signaling ${e.state === 'lost' ? 'lost' : 'unavailable'}: retrying in ${Math.round(e.retry_ms / 1000)} s; links already up keep working`;
      $('signal').className = e.state === 'connected' ? 'ok' : 'warn';
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
    await weft.start({ name: form.get('name'), mesh: form.get('mesh') });
    $('join').hidden = true;
    $('node').hidden = false;
    renderPeers();
  } catch (e) {
    $('status').textContent = 'not joined';
    showError(`could not join: ${e.message ?? e}`);
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
