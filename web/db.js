// The page's IndexedDB: the identity, the chunks of downloads in progress, files this page is
// sending (kept so a reload can resume them), and finished downloads.
const DB_NAME = 'weft';
const VERSION = 3;
export const IDENTITY = 'identity';
export const CHUNKS = 'chunks'; // key [blake3, byte offset] → Blob (one chunk of a download)
export const OUTGOING = 'outgoing'; // key `${peer}/${blake3}` → {peer, name, size, blake3, chunkHashes, blob}
export const RECEIVED = 'received'; // key blake3 → {blake3, name, size, blob, at}

let opening = null;

/** The database, opened (and upgraded) once per page. */
export function db() {
  opening ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, VERSION);
    req.onupgradeneeded = (e) => {
      for (const store of [IDENTITY, CHUNKS, OUTGOING, RECEIVED]) {
        if (!req.result.objectStoreNames.contains(store)) req.result.createObjectStore(store);
      }
      // Version 2 keyed chunks by index, which does not say their size: start those downloads over.
      if (e.oldVersion > 0 && e.oldVersion < 3) req.transaction.objectStore(CHUNKS).clear();
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error('another tab holds an older version of this page open; close it'));
  }).catch((e) => {
    opening = null;
    throw e;
  });
  return opening;
}

/** Runs `op(store)` in a transaction on `store`; resolves to the request's result once committed. */
export async function run(store, mode, op) {
  const tx = (await db()).transaction(store, mode);
  const req = op(tx.objectStore(store));
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve(req?.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('the storage transaction was aborted'));
  });
}
