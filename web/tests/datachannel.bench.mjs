// Data-channel throughput of the browser node, as ratios against browser→browser measured in the
// same run (docs/BENCHMARKS.md). Not a test: run it with scripts/bench-web.sh, which builds the
// release page and `weft` first. Usage:
//   node datachannel.bench.mjs PATH/TO/weft        (env: RUNS=3, MIB=64)
//
// One native node serves the page (`--http`); two pages join it. Each round sends a MIB-sized
// file, through Weft's transfer protocol (64 KiB data-channel messages, BLAKE3 per 256 KiB chunk,
// paced by bufferedAmount), page one → page two, page one → native, native → page two, and a raw
// RTCDataChannel baseline between the two pages (no Weft at all: 64 KiB messages paced the same
// way). Times are the receiver's: first byte to last byte ("stream") and offer to verified file
// ("whole"). Alongside: CPU seconds used by weft and by chromium during each transfer, and the
// kernel's UDP receive-buffer drops (RcvbufErrors) during it.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { profile, runCleanup, spawnJson, waitFor } from './support.mjs';

const [weftBin] = process.argv.slice(2);
assert.ok(weftBin, 'usage: node datachannel.bench.mjs PATH/TO/weft');
const RUNS = Number(process.env.RUNS ?? 3);
const MIB = Number(process.env.MIB ?? 64);
const BYTES = MIB * 1024 * 1024;
const MESSAGE = 64 * 1024;
const TICKS = 100; // USER_HZ: /proc stat times are in these

const temp = mkdtempSync(join(tmpdir(), 'weft-bench-'));
const cleanup = [];

/** CPU seconds (user + system) of the processes whose command name starts with `prefix`. */
function cpuSeconds(prefix) {
  let ticks = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (!name.startsWith(prefix)) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    } catch {
      // the process exited while we looked
    }
  }
  return ticks / TICKS;
}

/** The kernel's count of UDP datagrams dropped because a socket's receive buffer was full. */
function udpRcvbufErrors() {
  const [names, values] = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const i = names.split(/\s+/).indexOf('RcvbufErrors');
  return Number(values.split(/\s+/)[i]);
}

/** Runs `body`, which resolves to `{stream, whole}` in ms, and adds CPU and drop counts. */
async function measured(body) {
  const before = { weft: cpuSeconds('weft'), chromium: cpuSeconds('chrom'), drops: udpRcvbufErrors() };
  const times = await body();
  return {
    ...times,
    weftCpu: cpuSeconds('weft') - before.weft,
    chromiumCpu: cpuSeconds('chrom') - before.chromium,
    drops: udpRcvbufErrors() - before.drops,
  };
}

async function openPage(base, name) {
  const p = await profile(temp, name);
  cleanup.push(() => p.context.close());
  await p.page.goto(base + '/');
  await p.page.waitForFunction(() => !document.getElementById('host').hidden);
  await p.page.fill('input[name=name]', name);
  await p.page.click('#join button[type=submit]');
  await p.page.waitForFunction(() => document.getElementById('status').textContent.startsWith('joined'));
  await p.page.evaluate(() => {
    window.__events = [];
    weft.onEvent((e) => window.__events.push({ ...e, at: Date.now() }));
  });
  p.id = await p.page.evaluate(() => weft.peerId());
  return p;
}

/** Receiver-side times of the transfer of `name`, from `{event, at}` records. */
function receiverTimes(events, name) {
  const offered = events.find((e) => e.event === 'transfer_offered' && e.name === name);
  assert.ok(offered, `an offer of ${name}`);
  const mine = events.filter((e) => e.transfer_id === offered.transfer_id);
  const progress = mine.filter((e) => e.event === 'transfer_progress');
  const done = mine.find((e) => e.event === 'transfer_done');
  assert.ok(done && progress.length, `${name} arrived`);
  return { stream: progress.at(-1).at - progress[0].at, whole: done.at - offered.at };
}

/** Page events (with `at`) once `name` is done there. */
async function pageEventsWhenDone(page, name) {
  await waitFor(`${name} in the page`, 300_000, () =>
    page.evaluate((n) => window.__events.some((e) => e.event === 'transfer_done' && e.path === n), name));
  return page.evaluate(() => window.__events);
}

function nativeEvents(native) {
  return native.lines.map((l, i) => ({ ...l, at: native.times[i] }));
}

/** A plain RTCDataChannel from page `a` to page `b` (no Weft), its SDP carried by this script. */
async function rawChannel(a, b) {
  const gathered = () => new Promise((resolve) => {
    if (window.__raw.iceGatheringState === 'complete') return resolve();
    window.__raw.addEventListener('icegatheringstatechange', () => {
      if (window.__raw.iceGatheringState === 'complete') resolve();
    });
  });
  const offer = await a.page.evaluate(async (gatheredSrc) => {
    window.__raw = new RTCPeerConnection();
    window.__rawChannel = window.__raw.createDataChannel('raw');
    window.__rawChannel.binaryType = 'arraybuffer';
    await window.__raw.setLocalDescription();
    await eval(`(${gatheredSrc})`)();
    return window.__raw.localDescription.sdp;
  }, gathered.toString());
  const answer = await b.page.evaluate(async ({ sdp, gatheredSrc }) => {
    window.__raw = new RTCPeerConnection();
    window.__rawReceived = { bytes: 0, first: 0, last: 0 };
    window.__raw.ondatachannel = ({ channel }) => {
      channel.binaryType = 'arraybuffer';
      channel.onmessage = ({ data }) => {
        const r = window.__rawReceived;
        if (!r.first) r.first = Date.now();
        r.bytes += data.byteLength;
        r.last = Date.now();
      };
    };
    await window.__raw.setRemoteDescription({ type: 'offer', sdp });
    await window.__raw.setLocalDescription();
    await eval(`(${gatheredSrc})`)();
    return window.__raw.localDescription.sdp;
  }, { sdp: offer, gatheredSrc: gathered.toString() });
  await a.page.evaluate(async (sdp) => {
    await window.__raw.setRemoteDescription({ type: 'answer', sdp });
    if (window.__rawChannel.readyState !== 'open') {
      await new Promise((r) => window.__rawChannel.addEventListener('open', r, { once: true }));
    }
  }, answer);
}

/** Sends BYTES in MESSAGE-sized messages over the raw channel, paced like node-wasm's links. */
async function rawSend(a, b) {
  await b.page.evaluate(() => { window.__rawReceived = { bytes: 0, first: 0, last: 0 }; });
  const started = await a.page.evaluate(async ({ bytes, size }) => {
    const dc = window.__rawChannel;
    dc.bufferedAmountLowThreshold = 1 << 20;
    const message = new Uint8Array(size);
    const started = Date.now();
    for (let sent = 0; sent < bytes; sent += size) {
      if (dc.bufferedAmount >= 4 << 20) {
        await new Promise((r) => dc.addEventListener('bufferedamountlow', r, { once: true }));
      }
      dc.send(message);
    }
    return started;
  }, { bytes: BYTES, size: MESSAGE });
  await waitFor('the raw bytes', 300_000, () => b.page.evaluate((n) => window.__rawReceived.bytes >= n, BYTES));
  const r = await b.page.evaluate(() => window.__rawReceived);
  return { stream: r.last - r.first, whole: r.last - started };
}

const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const rate = (ms) => (BYTES / 1e6 / (ms / 1000)).toFixed(1);

try {
  const native = spawnJson(
    weftBin,
    ['--json', '--no-discovery', '--bind', '127.0.0.1', '--name', 'native', '--mesh', 'bench',
      '--data-dir', join(temp, 'native'), '--http', '127.0.0.1:0'],
    { stdin: 'pipe' },
  );
  cleanup.push(() => native.kill());
  const ready = await native.line('weft to start', 20000, (l) => l.event === 'ready');
  const base = `http://${ready.http}`;
  const one = await openPage(base, 'page-one');
  const two = await openPage(base, 'page-two');
  await waitFor('the pages to link over WebRTC', 20_000, async () =>
    (await one.page.evaluate(() => weft.peers())).some((p) => p.peer_id === two.id && p.link === 'webrtc'));
  await rawChannel(one, two);
  console.log(`${MIB} MiB per transfer, ${MESSAGE / 1024} KiB messages, ${RUNS} rounds; times are the receiver's`);

  const results = { raw: [], b2b: [], b2n: [], n2b: [] };
  for (let round = 0; round < RUNS; round++) {
    const data = randomBytes(BYTES);
    // Through a file: playwright refuses buffers over 50 MB.
    const pick = (page, peer, name) => {
      const path = join(temp, name);
      writeFileSync(path, data);
      return page.setInputFiles(`#peers li[data-peer="${peer}"] input[type=file]`, path);
    };

    results.raw.push(await measured(() => rawSend(one, two)));
    results.b2b.push(await measured(async () => {
      const name = `b2b-${round}.bin`;
      await pick(one.page, two.id, name);
      return receiverTimes(await pageEventsWhenDone(two.page, name), name);
    }));
    results.b2n.push(await measured(async () => {
      const name = `b2n-${round}.bin`;
      await pick(one.page, ready.peer_id, name);
      await native.line(`${name} at the native node`, 300_000, (l) => l.event === 'transfer_done' && l.path.endsWith(name));
      return receiverTimes(nativeEvents(native), name);
    }));
    results.n2b.push(await measured(async () => {
      const name = `n2b-${round}.bin`;
      const path = join(temp, name);
      writeFileSync(path, data);
      native.send({ cmd: 'send', path, peer: two.id });
      return receiverTimes(await pageEventsWhenDone(two.page, name), name);
    }));
    for (const [path, list] of Object.entries(results)) {
      const r = list.at(-1);
      console.log(`round ${round + 1} ${path}: stream ${rate(r.stream)} MB/s, whole ${rate(r.whole)} MB/s, `
        + `cpu weft ${r.weftCpu.toFixed(1)} s chromium ${r.chromiumCpu.toFixed(1)} s, udp drops ${r.drops}`);
    }
  }

  const label = { raw: 'raw data channel, page → page', b2b: 'weft page → page', b2n: 'weft page → native', n2b: 'weft native → page' };
  console.log(`\nmedians of ${RUNS}:`);
  const med = {};
  for (const [path, list] of Object.entries(results)) {
    med[path] = { stream: median(list.map((r) => r.stream)), whole: median(list.map((r) => r.whole)) };
    const cpu = median(list.map((r) => r.weftCpu + r.chromiumCpu));
    console.log(`${label[path].padEnd(30)} stream ${rate(med[path].stream).padStart(6)} MB/s  whole ${rate(med[path].whole).padStart(6)} MB/s`
      + `  cpu ${(cpu / (med[path].whole / 1000) * 100).toFixed(0)} % of one core, udp drops ${median(list.map((r) => r.drops))}`);
  }
  const ratio = (a, b) => (med[b].whole / med[a].whole).toFixed(2);
  console.log(`ratio page → native / page → page: ${ratio('b2n', 'b2b')}`);
  console.log(`ratio native → page / page → page: ${ratio('n2b', 'b2b')}`);
  console.log(`ratio weft page → page / raw data channel: ${ratio('b2b', 'raw')}`);
  assert.deepEqual([...one.errors, ...two.errors], [], 'no script errors in the pages');
} finally {
  await runCleanup(cleanup);
  rmSync(temp, { recursive: true, force: true });
}
