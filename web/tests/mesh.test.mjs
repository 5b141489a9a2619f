// Browser nodes in a real mesh: one weft-bootstrap, one native `weft`, two pages in Debian's
// chromium (separate profiles, so separate identities). Usage:
//   node mesh.test.mjs PATH/TO/weft-bootstrap PATH/TO/weft
//
// Asserts: each page lists the other page and the native node within 10 s, over direct WebRTC
// data channels (the server's relay metrics stay 0); a chat typed in page 1 arrives exactly once
// in page 2 and in the native node's --json output; 20 MiB files page 1 → native and native →
// page 2 (as a download) arrive byte-identical; a page reloaded mid-transfer resumes sending only
// what the receiver lacks; closing page 2 removes it from page 1 and from the native node within
// the liveness timeout.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { profile, runCleanup, spawnJson, startServer, test, waitFor } from './support.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const webDir = resolve(here, '..');
const [serverBin, weftBin] = process.argv.slice(2);
assert.ok(serverBin && weftBin, 'usage: node mesh.test.mjs PATH/TO/weft-bootstrap PATH/TO/weft');

const MESH = 'web-mesh';
/** The core closes a silent link after 45 s; a closed page is usually noticed much sooner. */
const LIVENESS_MS = 50_000;
const temp = mkdtempSync(join(tmpdir(), 'weft-mesh-'));
const cleanup = [];

/** Joins through the form, then records every event the page's node emits. */
async function joinMesh(page, name) {
  await page.fill('input[name=name]', name);
  await page.fill('input[name=mesh]', MESH);
  await page.click('#join button[type=submit]');
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('joined'));
  await page.evaluate(() => {
    window.__events = [];
    weft.onEvent((e) => window.__events.push(e));
  });
  return page.evaluate(() => weft.peerId());
}

const peersOf = (page) => page.evaluate(() => weft.peers());

async function nativePeers(native) {
  const before = native.lines.length;
  native.send({ cmd: 'peers' });
  const answer = await native.line('a peers answer', 5000, (l) => l.event === 'peers' && native.lines.indexOf(l) >= before);
  return answer.list;
}

async function metric(base, name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `metric ${name} is exported`);
  return Number(line.split(' ')[1]);
}

try {
  const { base, server } = await startServer(serverBin, join(temp, 'server'), webDir);
  cleanup.push(() => server.kill());
  const native = spawnJson(
    weftBin,
    ['--json', '--no-discovery', '--bind', '127.0.0.1', '--name', 'native', '--mesh', MESH,
      '--data-dir', join(temp, 'native'), '--bootstrap', base],
    { stdin: 'pipe' },
  );
  cleanup.push(() => native.kill());
  const nativeId = (await native.line('the native node to start', 20000, (l) => l.event === 'ready')).peer_id;
  await native.line('the native node to reach the server', 20000, (l) => l.event === 'bootstrap_connected');

  const one = await profile(temp, 'one');
  const two = await profile(temp, 'two');
  cleanup.push(() => one.context.close(), () => two.context.close());
  let oneId, twoId;

  await test('two pages and a native node link directly within 10 s', async () => {
    await one.page.goto(base + '/');
    await two.page.goto(base + '/');
    const started = Date.now();
    oneId = await joinMesh(one.page, 'page-one');
    twoId = await joinMesh(two.page, 'page-two');
    const linked = (list, ids) => ids.every((id) => list.some((p) => p.peer_id === id && p.link === 'webrtc'));
    await waitFor('page one to list page two and the native node over WebRTC', 10_000 - (Date.now() - started),
      async () => linked(await peersOf(one.page), [twoId, nativeId]));
    await waitFor('page two to list page one and the native node over WebRTC', 10_000 - (Date.now() - started),
      async () => linked(await peersOf(two.page), [oneId, nativeId]));
    const fromNative = await nativePeers(native);
    assert.ok(linked(fromNative, [oneId, twoId]), `the native node lists both pages: ${JSON.stringify(fromNative)}`);
    console.log(`  linked in ${Date.now() - started} ms`);
    // Direct, not relayed: the server relayed nothing.
    assert.equal(await metric(base, 'weft_bootstrap_relay_sessions'), 0);
    assert.equal(await metric(base, 'weft_bootstrap_relay_bytes_total'), 0);
    // The page shows the link type, and the map draws the three nodes and page one's two links.
    await one.page.waitForFunction(() => document.getElementById('peers').textContent.includes('webrtc'));
    await one.page.waitForFunction(() => document.querySelectorAll('#map g[data-peer]').length === 3
      && document.querySelectorAll('#map line[data-link=webrtc]').length === 2, null, { timeout: 5000 });
  });

  await test('chat from page one arrives once in page two and once at the native node', async () => {
    const text = `hello from page one ${Date.now()}`;
    await one.page.fill('#chat input[name=text]', text);
    await one.page.click('#chat button[type=submit]');
    await waitFor('the chat in page two', 5000, () =>
      two.page.evaluate((t) => window.__events.some((e) => e.event === 'chat' && e.text === t), text));
    await native.line('the chat at the native node', 5000, (l) => l.event === 'chat' && l.text === text);
    await new Promise((r) => setTimeout(r, 1000)); // room for a duplicate to show up
    const inTwo = await two.page.evaluate((t) => window.__events.filter((e) => e.event === 'chat' && e.text === t).length, text);
    assert.equal(inTwo, 1, 'exactly once in page two');
    assert.equal(native.lines.filter((l) => l.event === 'chat' && l.text === text).length, 1, 'exactly once at the native node');
    assert.ok((await two.page.textContent('#log')).includes(text), 'page two shows it');
    assert.equal(
      native.lines.find((l) => l.event === 'chat' && l.text === text).from, oneId, 'signed by page one');
  });

  const MiB = 1024 * 1024;
  const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

  /** Picks `file` in `page`'s "send file" input of the peer `peerId`. */
  async function sendThroughPage(page, peerId, name, buffer) {
    await page.setInputFiles(`#peers li[data-peer="${peerId}"] input[type=file]`, {
      name, mimeType: 'application/octet-stream', buffer,
    });
  }

  await test('a 20 MiB file from page one arrives byte-identical at the native node', async () => {
    const data = randomBytes(20 * MiB);
    const started = Date.now();
    await sendThroughPage(one.page, nativeId, 'from-page.bin', data);
    const done = await native.line('the file at the native node', 60_000,
      (l) => l.event === 'transfer_done' && l.path.endsWith('from-page.bin'));
    console.log(`  20 MiB in ${Date.now() - started} ms`);
    assert.equal(sha256(readFileSync(done.path)), sha256(data), 'byte-identical');
    await one.page.waitForFunction(() => document.querySelector('#transfers li.verified')?.textContent.includes('verified'),
      null, { timeout: 10_000 });
  });

  await test('a 20 MiB file from the native node arrives byte-identical in page two, as a download', async () => {
    const data = randomBytes(20 * MiB);
    const path = join(temp, 'from-native.bin');
    writeFileSync(path, data);
    native.send({ cmd: 'send', path, peer: twoId });
    await waitFor('page two to verify the file', 60_000, () =>
      two.page.evaluate(() => window.__events.some((e) => e.event === 'transfer_done' && e.path === 'from-native.bin')));
    const link = two.page.locator('#received a', { hasText: 'from-native.bin' });
    const [download] = await Promise.all([two.page.waitForEvent('download'), link.click()]);
    assert.equal(sha256(readFileSync(await download.path())), sha256(data), 'the download is byte-identical');
  });

  await test('a page that reloads mid-transfer resumes sending where the receiver stopped', async () => {
    const data = randomBytes(48 * MiB);
    await sendThroughPage(one.page, nativeId, 'reloaded.bin', data);
    const sentBefore = await waitFor('page one to send a third of the file', 60_000, () =>
      one.page.evaluate((total) => {
        const sent = window.__events.filter((e) => e.event === 'transfer_sent' && e.total === total).map((e) => e.sent);
        const most = Math.max(0, ...sent);
        return most >= total / 3 ? most : 0;
      }, data.length));
    await one.page.reload();
    await joinMesh(one.page, 'page-one');
    const done = await native.line('the resumed file at the native node', 90_000,
      (l) => l.event === 'transfer_done' && l.path.endsWith('reloaded.bin'));
    assert.equal(sha256(readFileSync(done.path)), sha256(data), 'byte-identical after the reload');
    const sentAfter = await waitFor('page one to report the finished offer', 10_000, () =>
      one.page.evaluate((total) => {
        const last = window.__events.filter((e) => e.event === 'transfer_sent' && e.total === total && e.complete).pop();
        return last ? last.sent : null;
      }, data.length));
    console.log(`  sent ${Math.round(sentBefore / MiB)} MiB before the reload, ${Math.round(sentAfter / MiB)} MiB after`);
    assert.ok(sentAfter <= data.length - sentBefore + 8 * MiB,
      `after the reload only what the receiver lacked was sent (${sentAfter} of ${data.length} bytes)`);
  });

  await test('closing page two removes it from page one and from the native node', async () => {
    const started = Date.now();
    await two.context.close();
    await waitFor('page one to drop page two', LIVENESS_MS, async () =>
      !(await peersOf(one.page)).some((p) => p.peer_id === twoId));
    await waitFor('the native node to drop page two', LIVENESS_MS, async () =>
      !(await nativePeers(native)).some((p) => p.peer_id === twoId));
    console.log(`  dropped in ${Date.now() - started} ms`);
    assert.ok((await peersOf(one.page)).some((p) => p.peer_id === nativeId), 'page one keeps the native node');
  });

  assert.deepEqual(one.errors, [], 'no script errors in page one');
  console.log('all mesh tests passed');
} finally {
  await runCleanup(cleanup);
  rmSync(temp, { recursive: true, force: true });
}
