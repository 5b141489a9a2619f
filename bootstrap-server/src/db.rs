//! Storage: SQLite through sqlx (a file in the data dir, WAL, synchronous=FULL so an answered
//! PUT survives a crash), migrations from the top-level `migrations/` folder. Every time-dependent
//! query takes `now` as a parameter: nothing here reads a clock.

use crate::registry::{Bucket, StoredName};
use node_core::identity::Signature;
use node_core::names::{Name, NameRecord, SignedNameRecord};
use node_core::PeerId;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Row;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row does not decode (a corrupt or foreign database).
    #[error("corrupt row for name {0}")]
    Corrupt(String),
    /// `DATABASE_URL` names a database this build does not speak.
    #[error("unsupported DATABASE_URL scheme {0:?}: this build speaks SQLite (sqlite://PATH)")]
    UnsupportedUrl(String),
}

/// Opens (creating if needed) `<dir>/weft-bootstrap.db` and applies the migrations.
pub async fn open(dir: &Path) -> Result<SqlitePool, DbError> {
    std::fs::create_dir_all(dir).map_err(|e| DbError::Sql(sqlx::Error::Io(e)))?;
    open_with(SqliteConnectOptions::new().filename(dir.join("weft-bootstrap.db"))).await
}

/// Opens the database `url` names (`sqlite://PATH`, as in `DATABASE_URL`) and applies the
/// migrations.
pub async fn open_url(url: &str) -> Result<SqlitePool, DbError> {
    if !url.starts_with("sqlite:") {
        let scheme = url.split(':').next().unwrap_or_default();
        return Err(DbError::UnsupportedUrl(scheme.chars().take(32).collect()));
    }
    open_with(SqliteConnectOptions::from_str(url)?).await
}

async fn open_with(options: SqliteConnectOptions) -> Result<SqlitePool, DbError> {
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
    sqlx::migrate!("../migrations").run(&pool).await?;
    Ok(pool)
}

/// The quota buckets of an address, as stored columns: (addr, net64, net48).
fn bucket_columns(ip: IpAddr) -> (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>) {
    match ip {
        IpAddr::V4(v4) => (v4.octets().to_vec(), None, None),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (v4.octets().to_vec(), None, None),
            None => {
                let o = v6.octets();
                (o.to_vec(), Some(o[..8].to_vec()), Some(o[..6].to_vec()))
            }
        },
    }
}

fn ip_from(addr: &[u8]) -> Option<IpAddr> {
    match addr.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(addr).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(addr).ok()?)),
        _ => None,
    }
}

/// The stored entry for `name`, live or not.
pub async fn get(pool: &SqlitePool, name: &Name) -> Result<Option<StoredName>, DbError> {
    let row =
        sqlx::query("SELECT value, owner, seq, unix_ms, signature, addr, expires_unix_ms FROM names WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(pool)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let corrupt = || DbError::Corrupt(name.to_string());
    let owner: Vec<u8> = row.try_get("owner")?;
    let signature: Vec<u8> = row.try_get("signature")?;
    let addr: Vec<u8> = row.try_get("addr")?;
    let record = NameRecord {
        name: name.clone(),
        value: row.try_get("value")?,
        owner: PeerId::from_bytes(owner.try_into().map_err(|_| corrupt())?),
        seq: u64::try_from(row.try_get::<i64, _>("seq")?).map_err(|_| corrupt())?,
        unix_ms: u64::try_from(row.try_get::<i64, _>("unix_ms")?).map_err(|_| corrupt())?,
        delete: false,
    };
    let signature = Signature::from_bytes(signature.try_into().map_err(|_| corrupt())?);
    Ok(Some(StoredName {
        signed: SignedNameRecord { record, signature },
        ip: ip_from(&addr).ok_or_else(corrupt)?,
        expires_unix_ms: u64::try_from(row.try_get::<i64, _>("expires_unix_ms")?).map_err(|_| corrupt())?,
    }))
}

/// Live names other than `except` charged to `bucket` at `now_ms`.
pub async fn used(pool: &SqlitePool, bucket: Bucket, except: &Name, now_ms: u64) -> Result<u32, DbError> {
    let (column, key): (&str, Vec<u8>) = match bucket {
        Bucket::V4(a) => ("addr", a.to_vec()),
        Bucket::V6(a) => ("addr", a.to_vec()),
        Bucket::V6Net64(n) => ("net64", n.to_vec()),
        Bucket::V6Net48(n) => ("net48", n.to_vec()),
    };
    let sql = format!("SELECT COUNT(*) FROM names WHERE {column} = ? AND expires_unix_ms > ? AND name != ?");
    let n: i64 = sqlx::query_scalar(&sql).bind(key).bind(now_ms as i64).bind(except.as_str()).fetch_one(pool).await?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Stores (inserts or replaces) a name charged to `ip`.
pub async fn store(
    pool: &SqlitePool,
    signed: &SignedNameRecord,
    ip: IpAddr,
    expires_unix_ms: u64,
) -> Result<(), DbError> {
    let r = &signed.record;
    let (addr, net64, net48) = bucket_columns(ip);
    sqlx::query(
        "INSERT INTO names (name, value, owner, seq, unix_ms, signature, addr, net64, net48, expires_unix_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT(name) DO UPDATE SET value = excluded.value, owner = excluded.owner, seq = excluded.seq, \
         unix_ms = excluded.unix_ms, signature = excluded.signature, addr = excluded.addr, net64 = excluded.net64, \
         net48 = excluded.net48, expires_unix_ms = excluded.expires_unix_ms",
    )
    .bind(r.name.as_str())
    .bind(&r.value)
    .bind(r.owner.as_bytes().to_vec())
    .bind(i64::try_from(r.seq).unwrap_or(i64::MAX))
    .bind(i64::try_from(r.unix_ms).unwrap_or(i64::MAX))
    .bind(signed.signature.to_bytes().to_vec())
    .bind(addr)
    .bind(net64)
    .bind(net48)
    .bind(i64::try_from(expires_unix_ms).unwrap_or(i64::MAX))
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes a name.
pub async fn delete(pool: &SqlitePool, name: &Name) -> Result<(), DbError> {
    sqlx::query("DELETE FROM names WHERE name = ?").bind(name.as_str()).execute(pool).await?;
    Ok(())
}

/// Removes every name expired at `now_ms`; returns how many.
pub async fn prune(pool: &SqlitePool, now_ms: u64) -> Result<u64, DbError> {
    let r = sqlx::query("DELETE FROM names WHERE expires_unix_ms <= ?").bind(now_ms as i64).execute(pool).await?;
    Ok(r.rows_affected())
}

/// How many names are stored (live or awaiting the next prune).
pub async fn count(pool: &SqlitePool) -> Result<u64, DbError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM names").fetch_one(pool).await?;
    Ok(n.max(0) as u64)
}

/// A trusted node as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedNode {
    /// The node.
    pub peer_id: PeerId,
    /// The operator's note.
    pub note: String,
    /// When it was added.
    pub added_unix_ms: u64,
}

/// Trusts `peer`, or updates its note if it already is (a non-empty `note` replaces the old one);
/// returns false if it already was trusted.
pub async fn trust_add(pool: &SqlitePool, peer: &PeerId, note: &str, now_ms: u64) -> Result<bool, DbError> {
    let id = peer.as_bytes().to_vec();
    let existed =
        sqlx::query("SELECT 1 FROM trusted WHERE peer_id = ?").bind(&id).fetch_optional(pool).await?.is_some();
    if existed {
        if !note.is_empty() {
            sqlx::query("UPDATE trusted SET note = ? WHERE peer_id = ?").bind(note).bind(&id).execute(pool).await?;
        }
        return Ok(false);
    }
    sqlx::query("INSERT INTO trusted (peer_id, note, added_unix_ms) VALUES (?, ?, ?)")
        .bind(&id)
        .bind(note)
        .bind(i64::try_from(now_ms).unwrap_or(i64::MAX))
        .execute(pool)
        .await?;
    Ok(true)
}

/// Stops trusting `peer`; returns false if it was not trusted.
pub async fn trust_remove(pool: &SqlitePool, peer: &PeerId) -> Result<bool, DbError> {
    let r = sqlx::query("DELETE FROM trusted WHERE peer_id = ?").bind(peer.as_bytes().to_vec()).execute(pool).await?;
    Ok(r.rows_affected() > 0)
}

/// Every trusted node, oldest first.
pub async fn trust_list(pool: &SqlitePool) -> Result<Vec<TrustedNode>, DbError> {
    let rows = sqlx::query("SELECT peer_id, note, added_unix_ms FROM trusted ORDER BY added_unix_ms, peer_id")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            let id: Vec<u8> = row.try_get("peer_id")?;
            let corrupt = || DbError::Corrupt("trusted".into());
            Ok(TrustedNode {
                peer_id: PeerId::from_bytes(id.try_into().map_err(|_| corrupt())?),
                note: row.try_get("note")?,
                added_unix_ms: u64::try_from(row.try_get::<i64, _>("added_unix_ms")?).map_err(|_| corrupt())?,
            })
        })
        .collect()
}
