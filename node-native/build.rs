//! Embeds the page — `web/`'s top-level files and the wasm-bindgen output in `web/pkg` — into
//! the library, so a `weft` binary serves a working page (`weft run --http`) with nothing beside
//! it. `scripts/build-web.sh` fills `web/pkg`; build it first (the README's commands do). Without
//! it the binary still builds, and says at run time that its page is missing.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// What a page is made of; anything else in `web/` (tests, notes) stays out of the binary.
const PAGE_EXTENSIONS: &[&str] = &["html", "js", "css", "wasm", "svg", "png", "ico", "json", "webmanifest"];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let web = manifest.join("..").join("web");
    let pkg = web.join("pkg");
    let mut assets = Vec::new();
    collect(&web, "", &mut assets);
    collect(&pkg, "pkg/", &mut assets);
    // Watching `web/` itself would rescan its tests and node_modules on every build, so watch
    // each page file, and `pkg/` (or, until it exists, `web/` so that its creation is seen).
    for (_, path) in &assets {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-changed={}", if pkg.is_dir() { &pkg } else { &web }.display());

    let mut code =
        String::from("/// The page's files: (path under `/`, contents).\npub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (name, path) in &assets {
        let _ = writeln!(code, "    ({name:?}, include_bytes!({:?})),", path.display().to_string());
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("web_assets.rs"), code).expect("OUT_DIR is writable");
}

/// The page files directly in `dir` (not in its subdirectories), sorted, named `prefix` + file name.
fn collect(dir: &Path, prefix: &str, assets: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| PAGE_EXTENSIONS.contains(&e)))
        .filter_map(|p| Some((format!("{prefix}{}", p.file_name()?.to_str()?), p.canonicalize().ok()?)))
        .collect();
    found.sort();
    assets.extend(found);
}
