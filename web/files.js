// Files in the page: the storage the browser node reads offered files from and writes downloads
// to, hashing for offers, and what survives a reload (files being sent, finished downloads).
//
// Downloads are kept chunk by chunk in IndexedDB, so an interrupted one resumes from the chunks
// already stored; the finished file is checked against its BLAKE3 before it is offered to the
// user. Files this page sends are remembered (the File itself, in IndexedDB) until the receiver
// confirms the whole file, so a reload mid-transfer resumes where the receiver stopped.
import { CHUNKS, OUTGOING, RECEIVED, run } from './db.js';
import { Blake3, FileHasher } from './pkg/node_wasm.js';

/**
 * How long a file this page was sending is re-offered after reloads: a receiver that has not
 * finished within a week is not coming back, and the browser should get the space back.
 */
const OFFER_KEPT_MS = 7 * 24 * 3600 * 1000;

/** Files this page offers, by BLAKE3 (hex): where chunk reads come from. */
const offered = new Map();

const chunkRange = (blake3) => IDBKeyRange.bound([blake3, 0], [blake3, Infinity]);

/** A name safe to save under: no directories, no control characters. */
function safeName(name) {
  // eslint-disable-next-line no-control-regex
  const base = String(name).split(/[\\/]/).pop().replace(/[\u0000-\u001f\u007f]/g, '').trim();
  return base && base !== '.' && base !== '..' ? base : 'download';
}

/** What the browser node calls (see WasmNode.setFiles). */
export const storage = {
  async read(blake3, index, offset, len) {
    const blob = offered.get(blake3);
    if (!blob) throw new Error('this page no longer has that file');
    return new Uint8Array(await blob.slice(offset, offset + len).arrayBuffer());
  },

  async write(blake3, index, offset, bytes) {
    // A Blob, not the bytes: the browser keeps it on disk, and finalize() never needs all of a
    // file's chunks in memory at once. Keyed by offset, so a chunk says where it belongs whatever
    // chunk size the sender used.
    await run(CHUNKS, 'readwrite', (s) => s.put(new Blob([bytes]), [blake3, offset]));
  },

  /** Reads the chunks in order, checks size and BLAKE3, keeps the file; returns its name. */
  async finalize(blake3, name, size) {
    // The run of chunks from offset 0, each starting where the last ended: chunks left from an
    // offer with another chunk size (overlapping ones) are skipped.
    const parts = [];
    let end = 0;
    await run(CHUNKS, 'readonly', (s) => {
      const req = s.openCursor(chunkRange(blake3));
      req.onsuccess = () => {
        const cursor = req.result;
        if (!cursor) return;
        if (cursor.key[1] === end) {
          parts.push(cursor.value);
          end += cursor.value.size;
        }
        cursor.continue();
      };
      return req;
    });
    const hasher = new Blake3();
    let total = 0;
    let hash;
    try {
      for (const p of parts) {
        hasher.update(new Uint8Array(await p.arrayBuffer())); // one chunk in memory at a time
        total += p.size;
      }
      hash = hasher.hex();
    } finally {
      hasher.free();
    }
    if (total !== size || hash !== blake3) {
      await run(CHUNKS, 'readwrite', (s) => s.delete(chunkRange(blake3)));
      throw new Error(`the whole file does not match its hash (${total} of ${size} bytes)`);
    }
    const saved = safeName(name);
    const blob = new Blob(parts, { type: 'application/octet-stream' });
    await run(RECEIVED, 'readwrite', (s) => s.put({ blake3, name: saved, size, blob, at: Date.now() }, blake3));
    await run(CHUNKS, 'readwrite', (s) => s.delete(chunkRange(blake3)));
    return saved;
  },
};

/**
 * One byte per chunk of a download of `size` bytes in chunks of `chunkSize`: 1 where that chunk
 * is already stored whole (to resume from).
 */
export async function storedChunks(blake3, size, chunkSize) {
  const have = new Uint8Array(Math.ceil(size / chunkSize));
  await run(CHUNKS, 'readonly', (s) => {
    const req = s.openCursor(chunkRange(blake3));
    req.onsuccess = () => {
      const cursor = req.result;
      if (!cursor) return;
      const offset = cursor.key[1];
      const index = offset / chunkSize;
      if (Number.isInteger(index) && index < have.length && cursor.value.size === Math.min(chunkSize, size - offset)) {
        have[index] = 1;
      }
      cursor.continue();
    };
    return req;
  });
  return have;
}

/** Hashes `file` in chunks of `chunkSize`; calls `progress(done)` on the way. */
export async function hashFile(file, chunkSize, progress = () => {}) {
  const hasher = new FileHasher();
  try {
    for (let offset = 0; offset < file.size; offset += chunkSize) {
      hasher.push(new Uint8Array(await file.slice(offset, offset + chunkSize).arrayBuffer()));
      progress(Math.min(offset + chunkSize, file.size));
    }
    return { blake3: hasher.whole, chunkHashes: hasher.chunkHashes };
  } finally {
    hasher.free();
  }
}

/** Serves `blob` for offers of `blake3` and remembers the offer until it is finished. */
export async function rememberOutgoing(entry) {
  offered.set(entry.blake3, entry.blob);
  await run(OUTGOING, 'readwrite', (s) => s.put({ ...entry, at: Date.now() }, `${entry.peer}/${entry.blake3}`));
}

/**
 * The offer of `blake3` to `peer` is finished (or failed): forget it; stop serving the file
 * unless `stillOffered` (another offer of the same content is under way).
 */
export async function forgetOutgoing(peer, blake3, stillOffered) {
  if (!stillOffered) offered.delete(blake3);
  await run(OUTGOING, 'readwrite', (s) => s.delete(`${peer}/${blake3}`));
}

/** Serves `blob` for offers of `blake3` (before the offer is stored, so reads never miss it). */
export function serve(blake3, blob) {
  offered.set(blake3, blob);
}

/** True when this page can store `size` more bytes (the browser's estimate). */
export async function roomFor(size) {
  const { quota = Infinity, usage = 0 } = (await navigator.storage?.estimate?.()) ?? {};
  return quota - usage > size;
}

/** Offers not finished when the page last ran (and under a week old), each served again from its stored file. */
export async function pendingOutgoing() {
  const entries = await run(OUTGOING, 'readonly', (s) => s.getAll());
  const now = Date.now();
  const stale = entries.filter((e) => !(now - e.at < OFFER_KEPT_MS));
  if (stale.length) {
    await run(OUTGOING, 'readwrite', (s) => { for (const e of stale) s.delete(`${e.peer}/${e.blake3}`); });
  }
  const live = entries.filter((e) => !stale.includes(e));
  for (const e of live) offered.set(e.blake3, e.blob);
  return live;
}

/** Finished downloads, newest first: `[{blake3, name, size, blob, at}]`. */
export async function receivedFiles() {
  const all = await run(RECEIVED, 'readonly', (s) => s.getAll());
  return all.sort((a, b) => b.at - a.at);
}
