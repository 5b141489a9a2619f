//! The server's Ed25519 key: `<data-dir>/server.key`, 32 secret bytes, mode 0600, created on
//! first start. Its public half is what nodes pin.

use node_core::identity::Keypair;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Loads the key, or creates it.
pub fn load_or_create(dir: &Path) -> std::io::Result<Keypair> {
    let path = dir.join("server.key");
    std::fs::create_dir_all(dir)?;
    match std::fs::read(&path) {
        Ok(bytes) => {
            let secret: [u8; 32] = bytes.try_into().map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is not a 32-byte key", path.display()))
            })?;
            Ok(Keypair::from_secret(secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keys = Keypair::generate(&mut rand::rngs::OsRng);
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
            f.write_all(&keys.secret())?;
            f.sync_all()?;
            Ok(keys)
        }
        Err(e) => Err(e),
    }
}
