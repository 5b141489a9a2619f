// MQTT over websocket as the page's signaling: a page and a native node that share only a broker
// (Debian's mosquitto: a websocket listener for the page, TCP for the node) link over WebRTC.
// The page is served by weft-bootstrap, whose signaling the native node never joins, so every
// envelope between them crossed the broker. Usage:
//   node mqtt.test.mjs PATH/TO/weft-bootstrap PATH/TO/weft
//
// Asserts: the page reports the broker connected; linking to the node's PeerId gives a direct
// WebRTC link at both ends, which the page's doctor shows; chat crosses both ways exactly once;
// no script errors.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { profile, runCleanup, spawnJson, startServer, test, waitFor } from './support.mjs';

const [serverBin, weftBin] = process.argv.slice(2);
assert.ok(serverBin && weftBin, 'usage: node mqtt.test.mjs PATH/TO/weft-bootstrap PATH/TO/weft');
const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((p) => existsSync(p));
if (!MOSQUITTO) {
  if (process.env.CI === 'true') throw new Error('mosquitto is not installed (apt-get install mosquitto)');
  console.log('skipping: mosquitto is not installed (apt-get install mosquitto)');
  process.exit(0);
}
const WEB = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const temp = mkdtempSync(join(tmpdir(), 'weft-mqtt-'));
const cleanup = [];

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}

/** mosquitto with a websocket listener and a TCP one, on loopback. */
async function startBroker() {
  const [ws, tcp] = [await freePort(), await freePort()];
  const conf = join(temp, 'mosquitto.conf');
  writeFileSync(conf, [
    `listener ${ws} 127.0.0.1`, 'protocol websockets', 'socket_domain ipv4',
    `listener ${tcp} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest stderr', 'log_type error', '',
  ].join('\n'));
  const proc = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
  cleanup.push(() => proc.kill());
  await waitFor('mosquitto to listen', 10_000, () => new Promise((ok) => {
    const probe = createServer();
    // Listening ports cannot be bound again: once both are taken, mosquitto is up.
    probe.once('error', () => ok(true)).listen(tcp, '127.0.0.1', () => probe.close(() => ok(false)));
  }));
  return { ws: `ws://127.0.0.1:${ws}/`, tcp: `mqtt://127.0.0.1:${tcp}` };
}

try {
  const broker = await startBroker();
  const { base, server } = await startServer(serverBin, join(temp, 'server'), WEB);
  cleanup.push(() => server.kill());
  const node = spawnJson(weftBin, ['--json', '--no-discovery', '--bind', '127.0.0.1', '--name', 'native',
    '--data-dir', join(temp, 'native'), '--mqtt', broker.tcp], { stdin: 'pipe' });
  cleanup.push(() => node.kill());
  const ready = await node.line('the node to start', 20_000, (l) => l.event === 'ready');
  await node.line('the node to reach the broker', 10_000, (l) => l.event === 'mqtt' && l.connected);

  await test('a page and a native node that share only a broker link over WebRTC and chat', async () => {
    const p = await profile(temp, 'page');
    cleanup.push(() => p.context.close());
    await p.page.goto(`${base}/?mqtt=${encodeURIComponent(broker.ws)}`);
    assert.equal(await p.page.inputValue('input[name=mqtt]'), broker.ws, 'the link fills in the broker');
    await p.page.fill('input[name=name]', 'page');
    await p.page.click('#join button[type=submit]');
    await p.page.waitForFunction(() => document.getElementById('mqtt').textContent.endsWith('connected'), null,
      { timeout: 10_000 });
    const started = Date.now();
    await p.page.fill('#link input[name=peer]', ready.peer_id);
    await p.page.click('#link button[type=submit]');
    await waitFor('the page to list the node over WebRTC', 15_000, async () =>
      (await p.page.evaluate(() => weft.peers())).some((x) => x.peer_id === ready.peer_id && x.link === 'webrtc'));
    console.log(`  linked in ${Date.now() - started} ms`);
    const id = await p.page.evaluate(() => weft.peerId());
    await node.line('the node to list the page', 5_000,
      (l) => l.event === 'peer_connected' && l.peer_id === id && l.link === 'webrtc');
    await p.page.click('#doctor-button');
    const doctor = await p.page.textContent('#doctor');
    assert.match(doctor, /^linked over webrtc/, 'the page\'s doctor shows the link');

    node.send({ cmd: 'chat', text: 'hello page, via a broker' });
    await p.page.waitForFunction(() => document.getElementById('log').textContent.includes('hello page, via a broker'),
      null, { timeout: 5_000 });
    await p.page.fill('#chat input[name=text]', 'hello node');
    await p.page.click('#chat button[type=submit]');
    await node.line('the page\'s chat at the node', 5_000, (l) => l.event === 'chat' && l.text === 'hello node');
    await new Promise((r) => setTimeout(r, 500)); // room for a duplicate to show up
    assert.equal(node.lines.filter((l) => l.event === 'chat' && l.text === 'hello node').length, 1, 'once');
    assert.deepEqual(p.errors, [], 'no script errors in the page');
  });
  console.log('all MQTT page tests passed');
} finally {
  await runCleanup(cleanup);
  rmSync(temp, { recursive: true, force: true });
}
