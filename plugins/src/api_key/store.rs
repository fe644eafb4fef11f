//! Where the keys are kept: in Redis, shared by every replica and changed at run time (a key
//! revoked on one replica is refused by all at their next request: nothing is cached), or in a
//! read-only file for small setups (edited by hand, reloaded when it changes).
//!
//! Redis: one hash `tollgate:keys:<plugin>` from key hash to record (JSON), and one
//! `tollgate:keys:<plugin>:ids` from id to key hash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::AsyncCommands;
use serde::Deserialize;
use tollgate_plugin_api::files::{read_limited_string, MAX_CONFIG_FILE};

use super::record::KeyRecord;
use crate::redis_link::RedisLink;

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis did not answer, or answered an error.
    #[error("the key store is unavailable: {0}")]
    Unavailable(String),
    /// The store is a file: keys are added and revoked by editing it.
    #[error("the key store is a read-only file: edit it to add or revoke keys")]
    ReadOnly,
}

/// The keys of one plugin instance.
pub enum KeyStore {
    /// Shared by the replicas, changed through the admin API.
    Redis(Box<RedisKeys>),
    /// A file, read when the configuration is loaded (and reloaded when it changes).
    File(FileKeys),
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The URL may hold a password.
            Self::Redis(redis) => f.debug_tuple("Redis").field(&redis.records).finish(),
            Self::File(file) => f
                .debug_struct("File")
                .field("path", &file.path)
                .field("keys", &file.by_hash.len())
                .finish(),
        }
    }
}

impl KeyStore {
    /// The record of the key whose hash is `hash`.
    pub async fn lookup(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        match self {
            Self::Redis(redis) => redis.lookup(hash).await,
            Self::File(file) => Ok(file.by_hash.get(hash).cloned()),
        }
    }

    /// Keeps a new key's record under its hash.
    pub async fn create(&self, hash: &str, record: &KeyRecord) -> Result<(), StoreError> {
        match self {
            Self::Redis(redis) => redis.create(hash, record).await,
            Self::File(_) => Err(StoreError::ReadOnly),
        }
    }

    /// Every record.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut records = match self {
            Self::Redis(redis) => redis.list().await?,
            Self::File(file) => file.by_hash.values().cloned().collect(),
        };
        records.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(records)
    }

    /// Revokes key `id` at `now`; its record, `None` when there is no such key.
    pub async fn revoke(&self, id: &str, now: u64) -> Result<Option<KeyRecord>, StoreError> {
        match self {
            Self::Redis(redis) => redis.revoke(id, now).await,
            Self::File(_) => Err(StoreError::ReadOnly),
        }
    }

    /// The file to watch, for a file store.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::Redis(_) => None,
            Self::File(file) => Some(&file.path),
        }
    }
}

/// The Redis keys of one plugin instance.
pub struct RedisKeys {
    link: RedisLink,
    records: String,
    ids: String,
}

impl RedisKeys {
    /// The keys of instance `plugin` at `url`; each call gives up after `timeout`.
    pub fn new(url: &str, plugin: &str, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            link: RedisLink::new(url, timeout)?,
            records: format!("tollgate:keys:{plugin}"),
            ids: format!("tollgate:keys:{plugin}:ids"),
        })
    }

    async fn connection(&self) -> Result<redis::aio::ConnectionManager, StoreError> {
        self.link
            .connection()
            .await
            .map_err(StoreError::Unavailable)
    }

    /// `work` within the link's time bound.
    async fn within<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let bounded = self.link.within(async { Ok(work.await) }).await;
        bounded.map_err(StoreError::Unavailable)?
    }

    async fn lookup(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.within(async {
            let mut connection = self.connection().await?;
            let json: Option<String> = connection
                .hget(&self.records, hash)
                .await
                .map_err(unavailable)?;
            Ok(json.and_then(|json| serde_json::from_str(&json).ok()))
        })
        .await
    }

    async fn create(&self, hash: &str, record: &KeyRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(|e| unavailable(e.to_string()))?;
        self.within(async {
            let mut connection = self.connection().await?;
            redis::pipe()
                .atomic()
                .hset(&self.records, hash, &json)
                .ignore()
                .hset(&self.ids, &record.id, hash)
                .ignore()
                .query_async::<()>(&mut connection)
                .await
                .map_err(unavailable)
        })
        .await
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.within(async {
            let mut connection = self.connection().await?;
            let all: HashMap<String, String> = connection
                .hgetall(&self.records)
                .await
                .map_err(unavailable)?;
            Ok(all
                .values()
                .filter_map(|json| serde_json::from_str(json).ok())
                .collect())
        })
        .await
    }

    async fn revoke(&self, id: &str, now: u64) -> Result<Option<KeyRecord>, StoreError> {
        self.within(async {
            let mut connection = self.connection().await?;
            let Some(hash): Option<String> =
                connection.hget(&self.ids, id).await.map_err(unavailable)?
            else {
                return Ok(None);
            };
            let json: Option<String> = connection
                .hget(&self.records, &hash)
                .await
                .map_err(unavailable)?;
            let Some(mut record) =
                json.and_then(|json| serde_json::from_str::<KeyRecord>(&json).ok())
            else {
                return Ok(None);
            };
            if record.revoked_at.is_none() {
                record.revoked_at = Some(now);
                let json =
                    serde_json::to_string(&record).map_err(|e| unavailable(e.to_string()))?;
                connection
                    .hset::<_, _, _, ()>(&self.records, &hash, json)
                    .await
                    .map_err(unavailable)?;
            }
            Ok(Some(record))
        })
        .await
    }
}

fn unavailable(error: impl ToString) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// A read-only file of keys: `[[key]]` tables of `tollgate keys generate`.
pub struct FileKeys {
    path: PathBuf,
    by_hash: HashMap<String, KeyRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default)]
    key: Vec<FileEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    id: String,
    hash: String,
    subject: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    claims: serde_json::Map<String, serde_json::Value>,
    name: Option<String>,
    #[serde(default)]
    created_at: u64,
    expires_at: Option<u64>,
    revoked_at: Option<u64>,
}

impl FileEntry {
    fn into_record(self) -> (String, KeyRecord) {
        let record = KeyRecord {
            id: self.id,
            prefix: self.prefix,
            subject: self.subject,
            claims: self.claims,
            name: self.name,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        };
        (self.hash.to_ascii_lowercase(), record)
    }
}

impl FileKeys {
    /// Reads the keys of `path`; what is wrong with it, said with the entry.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = read_limited_string(path, MAX_CONFIG_FILE)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let file: KeyFile = toml::from_str(&text)
            .map_err(|e| format!("`{}` is not a key file: {e}", path.display()))?;
        let mut by_hash = HashMap::with_capacity(file.key.len());
        for (i, entry) in file.key.into_iter().enumerate() {
            let valid_hash = entry
                .hash
                .strip_prefix("sha256:")
                .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
            if !valid_hash {
                return Err(format!(
                    "`{}`: key #{} (`{}`): `hash` must be \"sha256:\" and 64 hex digits",
                    path.display(),
                    i + 1,
                    entry.id
                ));
            }
            let (hash, record) = entry.into_record();
            if by_hash.insert(hash, record).is_some() {
                return Err(format!(
                    "`{}`: key #{} has the hash of an earlier key",
                    path.display(),
                    i + 1
                ));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            by_hash,
        })
    }
}
