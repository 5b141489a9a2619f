// Shared by the browser tests: Debian's chromium with the flags WebRTC on loopback needs, and
// real weft-bootstrap / weft processes whose JSON lines the tests read.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--allow-loopback-in-peer-connection',
  '--use-fake-ui-for-media-stream',
];

/** Polls `check` (sync or async) until it returns a truthy value; throws `what` after `ms`. */
export async function waitFor(what, ms, check) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A process printing one JSON object per line on stdout; keeps every parsed line, and in `times`
 * when it arrived (Date.now()).
 */
export function spawnJson(bin, args, { stdin = 'ignore' } = {}) {
  const proc = spawn(bin, args, { stdio: [stdin, 'pipe', 'inherit'] });
  const lines = [];
  const times = [];
  let buffered = '';
  proc.stdout.on('data', (chunk) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        lines.push(JSON.parse(line));
        times.push(Date.now());
      } catch {
        // not JSON (a human line): ignored
      }
    }
  });
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  return {
    proc,
    lines,
    times,
    /** The first line matching `pred`, waiting up to `ms`. */
    async line(what, ms, pred) {
      return waitFor(what, ms, () => {
        if (exited) throw new Error(`${bin} exited (${JSON.stringify(exited)}) while waiting for ${what}`);
        return lines.find(pred);
      });
    },
    send(obj) {
      proc.stdin.write(JSON.stringify(obj) + '\n');
    },
    /**
     * SIGTERM, then up to 5 s for the process to exit; a process that ignores it is SIGKILLed
     * and reported as an error, because a node that cannot be stopped is a bug.
     */
    async kill() {
      if (exited) return;
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const inTime = await Promise.race([gone.then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))]);
      if (!inTime) {
        proc.kill('SIGKILL');
        await gone;
        throw new Error(`${bin} did not exit within 5 s of SIGTERM`);
      }
    },
  };
}

/** weft-bootstrap on a free loopback port serving `webDir`; resolves to `{base, server}`. */
export async function startServer(bin, dataDir, webDir, extra = ['--no-stun']) {
  const server = spawnJson(bin, ['--listen', '127.0.0.1:0', '--data-dir', dataDir, '--web-dir', webDir, ...extra]);
  const ready = await server.line('the server to be ready', 20000, (l) => l.event === 'ready');
  return { base: `http://${ready.listen}`, server };
}

/** A fresh browser profile (its own IndexedDB, so its own identity), with errors collected. */
export async function profile(dir, name) {
  const context = await chromium.launchPersistentContext(join(dir, name), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  return { context, page, errors };
}

/** Runs one named test, printing how long it took. */
export async function test(name, body) {
  const started = Date.now();
  await body();
  console.log(`ok - ${name} (${Date.now() - started} ms)`);
}

/**
 * Runs the cleanup steps in reverse order. Every step runs even if one fails; failures are
 * printed and make the process exit non-zero (a leaked or unstoppable process must not pass).
 */
export async function runCleanup(steps) {
  for (const step of steps.reverse()) {
    try {
      await step();
    } catch (e) {
      console.error(`cleanup failed: ${e.message}`);
      process.exitCode = 1;
    }
  }
}
