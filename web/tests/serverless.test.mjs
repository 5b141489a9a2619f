// The serverless flow: no bootstrap server anywhere. Native node N1 serves the page (the copy
// built into the `weft` binary) and signaling with `--http`; N2 knows only N1. Usage:
//   node serverless.test.mjs PATH/TO/weft
//
// Asserts: the page is served by N1 and presets N1's mesh; a page on N1 links directly (WebRTC)
// to N1 and to N2, whose signaling can only have crossed N1's mesh link; a second page on N1
// then links to the first page, N1 and N2, all direct; a chat from page two reaches N2 once; a
// file from page two reaches N2 byte-identical, and the page (three peers, the map, a verified
// transfer) is saved as docs/img/page.png.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { profile, runCleanup, spawnJson, test, waitFor } from './support.mjs';

const [weftBin] = process.argv.slice(2);
assert.ok(weftBin, 'usage: node serverless.test.mjs PATH/TO/weft');

const MESH = 'serverless';
/** The README's picture of the page: three peers, the map, a verified transfer. */
const SCREENSHOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../docs/img/page.png');
mkdirSync(dirname(SCREENSHOT), { recursive: true });
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
const temp = mkdtempSync(join(tmpdir(), 'weft-serverless-'));
const cleanup = [];

async function startNative(name, extra) {
  const node = spawnJson(
    weftBin,
    ['--json', '--no-discovery', '--bind', '127.0.0.1', '--name', name, '--mesh', MESH,
      '--data-dir', join(temp, name), ...extra],
    { stdin: 'pipe' },
  );
  cleanup.push(() => node.kill());
  const ready = await node.line(`${name} to start`, 20000, (l) => l.event === 'ready');
  return { node, ready, id: ready.peer_id };
}

async function nativePeers(node) {
  const before = node.lines.length;
  node.send({ cmd: 'peers' });
  const answer = await node.line('a peers answer', 5000, (l) => l.event === 'peers' && node.lines.indexOf(l) >= before);
  return answer.list;
}

/** True when every id in `ids` is in `list` over a direct WebRTC data channel. */
const allWebRtc = (list, ids) => ids.every((id) => list.some((p) => p.peer_id === id && p.link === 'webrtc'));

/** Opens N1's page in a fresh profile and joins with the mesh the page preset. */
async function openPage(base, name) {
  const p = await profile(temp, name);
  cleanup.push(() => p.context.close());
  await p.page.goto(base + '/');
  await p.page.waitForFunction(() => !document.getElementById('host').hidden);
  assert.equal(await p.page.inputValue('input[name=mesh]'), MESH, 'the page presets the serving node\'s mesh');
  await p.page.fill('input[name=name]', name);
  await p.page.click('#join button[type=submit]');
  await p.page.waitForFunction(() => document.getElementById('status').textContent.startsWith('joined'));
  p.id = await p.page.evaluate(() => weft.peerId());
  return p;
}

try {
  const n1 = await startNative('n1', ['--http', '127.0.0.1:0']);
  assert.ok(n1.ready.http, 'N1 reports where it serves the page');
  const base = `http://${n1.ready.http}`;
  const n2 = await startNative('n2', ['--connect', n1.ready.tcp]);
  await waitFor('N1 and N2 to link', 10_000, async () => (await nativePeers(n2.node)).some((p) => p.peer_id === n1.id));

  let one;
  await test('a page served by N1 links directly to N1 and to N2, which only N1 knows', async () => {
    const started = Date.now();
    one = await openPage(base, 'page-one');
    await waitFor('page one to list N1 and N2 over WebRTC', 15_000, async () =>
      allWebRtc(await one.page.evaluate(() => weft.peers()), [n1.id, n2.id]));
    console.log(`  linked in ${Date.now() - started} ms`);
    assert.ok(allWebRtc(await nativePeers(n2.node), [one.id]), 'N2 lists page one over WebRTC');
  });

  let two;
  await test('a second page on N1 links to page one, N1 and N2, all direct', async () => {
    const started = Date.now();
    two = await openPage(base, 'page-two');
    await waitFor('page two to list everyone over WebRTC', 15_000, async () =>
      allWebRtc(await two.page.evaluate(() => weft.peers()), [one.id, n1.id, n2.id]));
    await waitFor('page one to list page two over WebRTC', 5_000, async () =>
      allWebRtc(await one.page.evaluate(() => weft.peers()), [two.id]));
    console.log(`  linked in ${Date.now() - started} ms`);
    for (const [label, n] of [['N1', n1], ['N2', n2]]) {
      assert.ok(allWebRtc(await nativePeers(n.node), [one.id, two.id]), `${label} lists both pages over WebRTC`);
    }
    // Native nodes stay on TCP with each other.
    const n1Link = (await nativePeers(n2.node)).find((p) => p.peer_id === n1.id);
    assert.equal(n1Link?.link, 'tcp', 'N1 and N2 stay on TCP');
  });

  await test('a chat from page two reaches N2 exactly once', async () => {
    const text = `serverless hello ${Date.now()}`;
    await two.page.fill('#chat input[name=text]', text);
    await two.page.click('#chat button[type=submit]');
    await n2.node.line('the chat at N2', 5000, (l) => l.event === 'chat' && l.text === text);
    await new Promise((r) => setTimeout(r, 1000)); // room for a duplicate to show up
    assert.equal(n2.node.lines.filter((l) => l.event === 'chat' && l.text === text).length, 1);
  });

  await test('a file from page two reaches N2 verified; the page is photographed for the README', async () => {
    const data = randomBytes(4 * 1024 * 1024);
    await two.page.setInputFiles(`#peers li[data-peer="${n2.id}"] input[type=file]`, {
      name: 'holiday-photos.tar', mimeType: 'application/octet-stream', buffer: data,
    });
    const done = await n2.node.line('the file at N2', 30_000,
      (l) => l.event === 'transfer_done' && l.path.endsWith('holiday-photos.tar'));
    assert.equal(sha256(readFileSync(done.path)), sha256(data), 'byte-identical');
    await two.page.waitForFunction(() => document.querySelector('#transfers li.verified'), null, { timeout: 10_000 });
    await two.page.waitForFunction(() => document.querySelectorAll('#map g[data-peer]').length === 4, null, { timeout: 5000 });
    await two.page.setViewportSize({ width: 900, height: 1100 });
    await two.page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`  saved ${SCREENSHOT}`);
  });

  assert.deepEqual([...one.errors, ...two.errors], [], 'no script errors in the pages');
  console.log('all serverless tests passed');
} finally {
  await runCleanup(cleanup);
  rmSync(temp, { recursive: true, force: true });
}
