// The page in a real browser: Debian's chromium, headless, driven by playwright-core, loading the
// page as weft-bootstrap serves it. Usage: node page.test.mjs PATH/TO/weft-bootstrap
//
// Asserts: the page loads with no script errors and exposes `window.weft`; joining through the
// form starts a node in the page (status and PeerId shown); the identity survives a reload
// (IndexedDB); another browser profile is another identity; the API refuses misuse clearly.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { runCleanup, startServer, profile as openProfile, test } from './support.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const webDir = resolve(here, '..');
const serverBin = process.argv[2];
assert.ok(serverBin, 'usage: node page.test.mjs PATH/TO/weft-bootstrap');

const temp = mkdtempSync(join(tmpdir(), 'weft-web-'));
let server;
const profile = (name) => openProfile(temp, name);

try {
  const started = await startServer(serverBin, join(temp, 'server'), webDir);
  server = started.server;
  const base = started.base;
  const a = await profile('a');
  let firstId;

  await test('the page loads without script errors and exposes window.weft', async () => {
    await a.page.goto(base + '/');
    await a.page.waitForFunction(() => typeof window.weft?.start === 'function');
    assert.equal(await a.page.evaluate(() => weft.peerId()), null, 'no node before joining');
    assert.deepEqual(a.errors, []);
  });

  await test('joining through the form starts a node in the page', async () => {
    await a.page.fill('input[name=name]', 'page-one');
    await a.page.fill('input[name=mesh]', 'test-mesh');
    await a.page.click('#join button[type=submit]');
    await a.page.waitForFunction(() => document.getElementById('status').textContent.startsWith('joined'));
    firstId = await a.page.evaluate(() => weft.peerId());
    assert.match(firstId, /^[a-z2-7]{52}$/, 'a PeerId in base32');
    assert.ok((await a.page.textContent('#me')).includes(firstId), 'the page shows its PeerId');
    assert.ok((await a.page.textContent('#status')).includes('test-mesh'));
    assert.deepEqual(await a.page.evaluate(() => weft.peers()), [], 'nobody else yet');
    // Chat with nobody linked is accepted (it is flooded to whoever is linked: no one).
    await a.page.fill('#chat input[name=text]', 'hello <b>world</b>');
    await a.page.click('#chat button[type=submit]');
    assert.equal(await a.page.locator('#log li').last().textContent(), 'you: hello <b>world</b>', 'text, never HTML');
    assert.deepEqual(a.errors, []);
  });

  await test('the identity survives a reload (IndexedDB)', async () => {
    await a.page.reload();
    await a.page.waitForFunction(() => typeof window.weft?.start === 'function');
    const again = await a.page.evaluate(async () => (await weft.start({ name: 'page-one', mesh: 'test-mesh' })).peerId);
    assert.equal(again, firstId);
  });

  await test('another browser profile is another identity', async () => {
    const b = await profile('b');
    await b.page.goto(base + '/');
    await b.page.waitForFunction(() => typeof window.weft?.start === 'function');
    const other = await b.page.evaluate(async () => (await weft.start({ name: 'page-two' })).peerId);
    assert.match(other, /^[a-z2-7]{52}$/);
    assert.notEqual(other, firstId);
    await b.context.close();
  });

  await test('a second tab of the same profile takes over signaling; the first stops instead of taking it back', async () => {
    const log = () => { window.__signaling = []; weft.onEvent((e) => { if (e.event === 'signaling') window.__signaling.push(e); }); };
    await a.page.evaluate(log);
    const tab = await a.context.newPage();
    tab.on('pageerror', (e) => a.errors.push(e.message));
    await tab.goto(base + '/');
    await tab.waitForFunction(() => typeof window.weft?.start === 'function');
    await tab.evaluate(log);
    const same = await tab.evaluate(async () => (await weft.start({ name: 'page-one', mesh: 'test-mesh' })).peerId);
    assert.equal(same, firstId, 'one profile, one identity');
    await a.page.waitForFunction(() => window.__signaling.some((e) => e.state === 'stopped'), null, { timeout: 5000 });
    assert.match(await a.page.textContent('#signal'), /signaling stopped: this identity signed in to signaling from another tab/);
    // Past the first reconnect delay (1 s): the first tab has not come back to replace the second.
    await new Promise((r) => setTimeout(r, 3000));
    const states = await tab.evaluate(() => window.__signaling.map((e) => e.state));
    assert.deepEqual(states, ['connected'], 'the second tab stays signed in');
    assert.equal(await a.page.evaluate(() => window.__signaling.filter((e) => e.state === 'connected').length), 0);
    await tab.evaluate(() => weft.stop());
    await tab.close();
  });

  await test('misuse gets clear errors', async () => {
    const msg = await a.page.evaluate(() => {
      weft.stop();
      try { weft.chat('x'); return 'no error'; } catch (e) { return e.message; }
    });
    assert.match(msg, /not started/);
    const tooLong = await a.page.evaluate(async () => {
      try { await weft.start({ name: 'x'.repeat(65) }); return 'no error'; } catch (e) { return String(e.message ?? e); }
    });
    assert.match(tooLong, /at most 64 bytes/);
    assert.deepEqual(a.errors, []);
  });

  await a.context.close();
  console.log('all page tests passed');
} finally {
  await runCleanup([() => server?.kill()]);
  rmSync(temp, { recursive: true, force: true });
}
