//! Files in the page. The core asks for chunk reads (of files this page offers), chunk writes and
//! a final check (of downloads); the page's storage object (`web/files.js`: the offered `File`s,
//! IndexedDB for downloads) does each asynchronously, and its answer goes back to the core as
//! the matching input. Hashing for offers and for the final check is BLAKE3 in wasm.

use crate::{feed, Inner};
use node_core::{FileHash, Input, Output};
use std::cell::RefCell;
use std::rc::Weak;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// Calls `storage[method](...args)` and awaits the promise it returns.
async fn call(storage: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, String> {
    let f = js_sys::Reflect::get(storage, &JsValue::from_str(method))
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or_else(|| format!("the page's file storage has no {method}()"))?;
    let args: js_sys::Array = args.iter().collect();
    let returned = f.apply(storage, &args).map_err(describe)?;
    JsFuture::from(js_sys::Promise::resolve(&returned)).await.map_err(describe)
}

/// A thrown JavaScript value as text.
fn describe(e: JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "the page's file storage failed".to_owned())
}

/// Carries out one file output in the background; `storage` is the page's storage object.
pub(crate) fn carry_out(weak: Weak<RefCell<Inner>>, storage: Option<JsValue>, out: Output) {
    wasm_bindgen_futures::spawn_local(async move {
        let input = match storage {
            Some(storage) => run(&storage, out).await,
            None => refuse(out),
        };
        if let Some(input) = input {
            feed(&weak, input);
        }
    });
}

fn hex(file: &FileHash) -> JsValue {
    JsValue::from_str(&file.to_string())
}

async fn run(storage: &JsValue, out: Output) -> Option<Input> {
    Some(match out {
        Output::ReadChunk { file, index, offset, len } => {
            let args = [hex(&file), index.into(), (offset as f64).into(), len.into()];
            let result = call(storage, "read", &args).await.and_then(|bytes| {
                let bytes =
                    bytes.dyn_into::<js_sys::Uint8Array>().map_err(|_| "read() must give a Uint8Array".to_owned())?;
                if bytes.length() != len {
                    return Err(format!("read {} bytes of chunk {index}, wanted {len}", bytes.length()));
                }
                Ok(bytes.to_vec())
            });
            Input::ChunkRead { file, index, result }
        }
        Output::WriteChunk { file, index, offset, data } => {
            let args = [hex(&file), index.into(), (offset as f64).into(), js_sys::Uint8Array::from(&data[..]).into()];
            match call(storage, "write", &args).await {
                Ok(_) => Input::ChunkWritten { file, index },
                Err(reason) => Input::StorageFailed { file, reason },
            }
        }
        Output::FinalizeDownload { file, name, size } => {
            let args = [hex(&file), JsValue::from_str(&name), (size as f64).into()];
            let result = call(storage, "finalize", &args)
                .await
                .and_then(|saved| saved.as_string().ok_or_else(|| "finalize() must give the saved name".to_owned()));
            Input::DownloadFinalized { file, result }
        }
        _ => return None,
    })
}

/// The answers when the page gave no storage: every file operation fails, clearly.
fn refuse(out: Output) -> Option<Input> {
    const WHY: &str = "this page has no file storage";
    Some(match out {
        Output::ReadChunk { file, index, .. } => Input::ChunkRead { file, index, result: Err(WHY.into()) },
        Output::WriteChunk { file, .. } => Input::StorageFailed { file, reason: WHY.into() },
        Output::FinalizeDownload { file, .. } => Input::DownloadFinalized { file, result: Err(WHY.into()) },
        _ => return None,
    })
}

/// Hashes a file as it is read, chunk by chunk: each chunk's BLAKE3 (what the receiver verifies
/// every chunk against) and the whole file's (its name in the protocol).
#[wasm_bindgen]
pub struct FileHasher {
    whole: blake3::Hasher,
    chunks: Vec<u8>,
}

#[wasm_bindgen]
impl FileHasher {
    /// An empty hasher.
    #[wasm_bindgen(constructor)]
    pub fn new() -> FileHasher {
        FileHasher { whole: blake3::Hasher::new(), chunks: Vec::new() }
    }

    /// The next chunk of the file (every chunk but the last is exactly the chunk size).
    pub fn push(&mut self, chunk: &[u8]) {
        self.whole.update(chunk);
        self.chunks.extend_from_slice(blake3::hash(chunk).as_bytes());
    }

    /// The whole file's BLAKE3, hex.
    #[wasm_bindgen(getter)]
    pub fn whole(&self) -> String {
        self.whole.finalize().to_hex().to_string()
    }

    /// Every chunk's BLAKE3, concatenated (32 bytes each).
    #[wasm_bindgen(getter, js_name = chunkHashes)]
    pub fn chunk_hashes(&self) -> Vec<u8> {
        self.chunks.clone()
    }
}

impl Default for FileHasher {
    fn default() -> Self {
        Self::new()
    }
}

/// BLAKE3 over data fed in pieces, for the final check of a download.
#[wasm_bindgen]
pub struct Blake3(blake3::Hasher);

#[wasm_bindgen]
impl Blake3 {
    /// An empty hasher.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Blake3 {
        Blake3(blake3::Hasher::new())
    }

    /// More data.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The hash so far, hex.
    pub fn hex(&self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

impl Default for Blake3 {
    fn default() -> Self {
        Self::new()
    }
}
