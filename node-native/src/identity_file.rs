//! The node's key on disk: `<data-dir>/identity.key`, 32 secret bytes, mode 0600.

use node_core::identity::Keypair;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Why the identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Reading or writing the key file failed.
    #[error("identity file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a 32-byte key.
    #[error("identity file {0} is corrupt (expected 32 bytes); move it away to create a new identity")]
    Corrupt(String),
}

/// Loads the key in `dir`, or creates one (readable by the owner only).
pub fn load_or_create(dir: &Path) -> Result<Keypair, IdentityError> {
    let path = dir.join("identity.key");
    let io = |source| IdentityError::Io { path: path.display().to_string(), source };
    fs::create_dir_all(dir).map_err(io)?;
    match fs::read(&path) {
        Ok(bytes) => {
            let secret: [u8; 32] = bytes.try_into().map_err(|_| IdentityError::Corrupt(path.display().to_string()))?;
            if let Ok(meta) = fs::metadata(&path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!("{} is readable by others; run: chmod 600 {}", path.display(), path.display());
                }
            }
            Ok(Keypair::from_secret(secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keys = Keypair::generate(&mut rand::rngs::OsRng);
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io)?;
            f.write_all(&keys.secret()).and_then(|()| f.sync_all()).map_err(io)?;
            Ok(keys)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_persists_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join("identity.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.peer_id(), b.peer_id());
        fs::write(dir.path().join("identity.key"), b"short").unwrap();
        assert!(matches!(load_or_create(dir.path()), Err(IdentityError::Corrupt(_))));
    }
}
