//! Where `mcp-tool-pin` keeps the definitions it pinned (mode `tofu`): in memory, and in a JSON
//! file that survives restarts (`store = { file = "..." }`) or in Redis for replicas
//! (`store = { redis = "..." }`). Decisions are taken on the memory (a list answer is filtered as
//! it streams, without waiting on the disk or the network); new pins are written in the
//! background (a file replaced atomically; Redis `HSETNX`), and Redis is read back into memory
//! before each list or call is forwarded. A write that fails (or a Redis that does not answer)
//! makes the store unavailable until one succeeds again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::redis_pins::RedisPins;

/// The largest pin store file read (thousands of tools with their definitions).
const MAX_STORE_FILE: u64 = 256 * 1024 * 1024;

/// One pinned definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pin {
    /// `sha256:<hex>` of the canonical definition.
    pub hash: String,
    /// The definition, for people reading the file.
    pub definition: Value,
    /// The hash of the definition last listed, when it is not the pinned one (so that a call
    /// after a restart, before any listing, is still refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<String>,
    /// The definition of `seen`: what an operator approves through the admin API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_definition: Option<Value>,
}

/// Pins by route, then by tool (the name the route's clients see).
pub type Pins = BTreeMap<String, BTreeMap<String, Pin>>;

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    /// What wrote it.
    #[serde(default)]
    written_by: String,
    pins: Pins,
}

/// What pinning a definition found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinned {
    /// This definition is the pinned one.
    Same,
    /// It was not pinned: now it is.
    New,
    /// Another definition is pinned: its hash.
    Other(String),
    /// Not pinned, and the store cannot take new pins (it is unavailable).
    Unavailable,
}

/// Why an approval was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproveError {
    /// No pin of that tool on that route.
    NoPin,
    /// The tool's last listing is not the definition named (or it matches its pin already).
    NotSeen {
        /// The hash of the last listing that differed from the pin, if any.
        seen: Option<String>,
    },
    /// The store could not be read or written.
    Unavailable(String),
}

/// The pins of one plugin instance.
#[derive(Debug)]
pub struct PinStore {
    pins: Arc<Mutex<Pins>>,
    file: Option<PathBuf>,
    /// The last write failed: no new pins until one succeeds.
    failing: Arc<AtomicBool>,
    /// Serialises writers and holds the generation last written, so that an older picture never
    /// replaces a newer one.
    writing: Arc<Mutex<u64>>,
    /// The generation of the latest picture handed to a writer.
    generation: AtomicU64,
    redis: Option<Arc<RedisPins>>,
}

impl PinStore {
    /// A store kept in memory only (pins are lost at restart).
    pub fn in_memory() -> Self {
        Self {
            pins: Arc::default(),
            file: None,
            failing: Arc::default(),
            writing: Arc::default(),
            generation: AtomicU64::new(0),
            redis: None,
        }
    }

    /// A store in Redis (`redis`), read back before each list or call.
    pub fn redis(redis: RedisPins) -> Self {
        Self {
            redis: Some(Arc::new(redis)),
            ..Self::in_memory()
        }
    }

    /// Whether pins live in Redis (and must be read back before deciding).
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// Reads `route`'s pins back from Redis (no-op for other stores); an error makes the store
    /// unavailable until a read or write succeeds.
    pub async fn refresh(&self, route: &str) -> Result<(), String> {
        let Some(redis) = &self.redis else {
            return Ok(());
        };
        match redis.load(route).await {
            Ok(shared) => {
                if let Ok(mut pins) = self.pins.lock() {
                    // Redis decides: a pin another replica wrote first replaces this one's, and
                    // a pin deleted there (to approve the tool again) is gone here too.
                    pins.insert(route.to_string(), shared);
                }
                self.failing.store(false, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.failing.store(true, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// The store in `file`, read now (a missing file is an empty store).
    pub fn open(file: &Path) -> Result<Self, String> {
        let pins = match tollgate_plugin_api::files::read_limited(file, MAX_STORE_FILE) {
            Ok(bytes) => {
                serde_json::from_slice::<StoreFile>(&bytes)
                    .map_err(|e| format!("`{}` is not a pin store: {e}", file.display()))?
                    .pins
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Pins::new(),
            Err(e) => return Err(format!("cannot read `{}`: {e}", file.display())),
        };
        Ok(Self {
            pins: Arc::new(Mutex::new(pins)),
            file: Some(file.to_path_buf()),
            failing: Arc::default(),
            writing: Arc::default(),
            generation: AtomicU64::new(0),
            redis: None,
        })
    }

    /// The pin of `tool` on `route`, if any.
    pub fn get(&self, route: &str, tool: &str) -> Option<Pin> {
        self.pins.lock().ok()?.get(route)?.get(tool).cloned()
    }

    /// Pins `hash` for `tool` on `route` unless another definition is pinned; `definition`
    /// is built only when it is kept (a new pin, or a listing that differs from the pin).
    pub fn pin(
        &self,
        route: &str,
        tool: &str,
        hash: &str,
        definition: impl FnOnce() -> Value,
    ) -> Pinned {
        let Ok(mut pins) = self.pins.lock() else {
            return Pinned::Unavailable;
        };
        if let Some(pin) = pins.get_mut(route).and_then(|tools| tools.get_mut(tool)) {
            let seen = (pin.hash != hash).then(|| hash.to_string());
            let outcome = match &seen {
                None => Pinned::Same,
                Some(_) => Pinned::Other(pin.hash.clone()),
            };
            if pin.seen != seen {
                pin.seen_definition = seen.is_some().then(definition);
                pin.seen = seen;
                let changed = pin.clone();
                let picture = self.file.is_some().then(|| pins.clone());
                drop(pins);
                if let Some(picture) = picture {
                    self.persist(picture);
                }
                self.write_shared(route, tool, changed, false);
            }
            return outcome;
        }
        if self.failing.load(Ordering::Relaxed) {
            return Pinned::Unavailable;
        }
        let pin = Pin {
            hash: hash.to_string(),
            definition: definition(),
            seen: None,
            seen_definition: None,
        };
        pins.entry(route.to_string())
            .or_default()
            .insert(tool.to_string(), pin.clone());
        let picture = self.file.is_some().then(|| pins.clone());
        drop(pins);
        if let Some(picture) = picture {
            self.persist(picture);
        }
        self.write_shared(route, tool, pin, true);
        Pinned::New
    }

    /// The pins of `route` (every route's when `None`), read back from Redis first if shared.
    pub async fn list(&self, route: Option<&str>) -> Result<Pins, String> {
        if let Some(route) = route {
            self.refresh(route).await?;
        }
        let pins = self.pins.lock().map_err(|_| "the pin store is poisoned")?;
        Ok(match route {
            Some(route) => pins
                .get_key_value(route)
                .map(|(k, v)| (k.clone(), v.clone()))
                .into_iter()
                .collect(),
            None => pins.clone(),
        })
    }

    /// Makes the definition last listed of `tool` on `route`, whose hash is `hash`, its pin (an
    /// operator approved the change); answers the pin it replaced. Kept in Redis before the
    /// answer when shared, so that every replica trusts it from its next request on.
    pub async fn approve_seen(
        &self,
        route: &str,
        tool: &str,
        hash: &str,
    ) -> Result<Pin, ApproveError> {
        self.refresh(route)
            .await
            .map_err(ApproveError::Unavailable)?;
        let (old, approved) = {
            let pins = self
                .pins
                .lock()
                .map_err(|_| ApproveError::Unavailable("the pin store is poisoned".into()))?;
            let old = pins
                .get(route)
                .and_then(|tools| tools.get(tool))
                .ok_or(ApproveError::NoPin)?
                .clone();
            let definition = match (&old.seen, &old.seen_definition) {
                (Some(seen), Some(definition)) if seen == hash => definition.clone(),
                _ => {
                    return Err(ApproveError::NotSeen {
                        seen: old.seen.clone(),
                    })
                }
            };
            let approved = Pin {
                hash: hash.to_string(),
                definition,
                seen: None,
                seen_definition: None,
            };
            (old, approved)
        };
        if let Some(redis) = &self.redis {
            redis
                .put(route, tool, &approved)
                .await
                .map_err(ApproveError::Unavailable)?;
        }
        let picture = {
            let mut pins = self
                .pins
                .lock()
                .map_err(|_| ApproveError::Unavailable("the pin store is poisoned".into()))?;
            pins.entry(route.to_string())
                .or_default()
                .insert(tool.to_string(), approved);
            self.file.is_some().then(|| pins.clone())
        };
        if let Some(picture) = picture {
            self.persist(picture);
        }
        Ok(old)
    }

    /// Writes one pin to Redis in the background (`first`: only if none is there).
    fn write_shared(&self, route: &str, tool: &str, pin: Pin, first: bool) {
        let (Some(redis), Ok(runtime)) =
            (self.redis.clone(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let (route, tool, failing) = (route.to_string(), tool.to_string(), self.failing.clone());
        let pins = self.pins.clone();
        runtime.spawn(async move {
            let written = if first {
                match redis.put_new(&route, &tool, &pin).await {
                    // Another replica pinned it first: its pin is the one, here too.
                    Ok(false) => redis.load(&route).await.map(|shared| {
                        if let Ok(mut pins) = pins.lock() {
                            pins.insert(route.clone(), shared);
                        }
                    }),
                    other => other.map(|_| ()),
                }
            } else {
                redis.put(&route, &tool, &pin).await
            };
            if let Err(e) = &written {
                tracing::error!(%route, %tool, error = %e, "mcp-tool-pin cannot write a pin to Redis");
            }
            failing.store(written.is_err(), Ordering::Relaxed);
        });
    }

    /// Whether new pins cannot be kept now.
    pub fn unavailable(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Writes `pins` to the file in the background (no file: nothing to do); a picture older
    /// than one already written is skipped, whatever order the writers run in.
    fn persist(&self, pins: Pins) {
        let Some(file) = self.file.clone() else {
            return;
        };
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let (failing, writing) = (self.failing.clone(), self.writing.clone());
        let write = move || {
            let Ok(mut written) = writing.lock() else {
                return;
            };
            if *written >= generation {
                return;
            }
            *written = generation;
            let result = write_atomically(&file, &pins);
            if let Err(e) = &result {
                tracing::error!(file = %file.display(), error = %e, "mcp-tool-pin cannot write its pin store");
            }
            failing.store(result.is_err(), Ordering::Relaxed);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(write);
            }
            Err(_) => write(),
        }
    }

    /// Waits until the pins written so far are on disk (tests, shutdown).
    pub fn flush(&self) {
        drop(self.writing.lock());
    }
}

fn write_atomically(file: &Path, pins: &Pins) -> std::io::Result<()> {
    let contents = StoreFile {
        written_by: format!("tollgate {} mcp-tool-pin", env!("CARGO_PKG_VERSION")),
        pins: pins.clone(),
    };
    let text = serde_json::to_vec_pretty(&contents).map_err(std::io::Error::other)?;
    let mut temporary = file.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_definition_is_pinned_and_survives_a_new_store() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pins.json");
        let store = PinStore::open(&file).unwrap();
        let definition = json!({"name": "add"});
        assert_eq!(
            store.pin("tools", "add", "sha256:a", || definition.clone()),
            Pinned::New
        );
        assert_eq!(
            store.pin("tools", "add", "sha256:a", || definition.clone()),
            Pinned::Same
        );
        assert_eq!(
            store.pin("tools", "add", "sha256:b", || definition.clone()),
            Pinned::Other("sha256:a".into())
        );
        assert_eq!(
            store.pin("other", "add", "sha256:b", || definition.clone()),
            Pinned::New
        );
        store.flush();
        let again = PinStore::open(&file).unwrap();
        assert_eq!(again.get("tools", "add").unwrap().hash, "sha256:a");
        assert_eq!(
            again.get("tools", "add").unwrap().seen.as_deref(),
            Some("sha256:b"),
            "the last listing is remembered"
        );
        assert_eq!(again.get("other", "add").unwrap().hash, "sha256:b");
    }

    #[test]
    fn a_store_that_is_not_json_is_refused_and_a_failing_one_takes_no_new_pins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pins.json");
        std::fs::write(&file, "not json").unwrap();
        assert!(PinStore::open(&file)
            .unwrap_err()
            .contains("not a pin store"));
        let unwritable = PinStore::open(&dir.path().join("missing-dir/pins.json")).unwrap();
        assert_eq!(
            unwritable.pin("r", "t", "sha256:a", || json!({})),
            Pinned::New
        );
        unwritable.flush();
        assert!(unwritable.unavailable());
        assert_eq!(
            unwritable.pin("r", "u", "sha256:a", || json!({})),
            Pinned::Unavailable
        );
        assert_eq!(
            unwritable.pin("r", "t", "sha256:a", || json!({})),
            Pinned::Same
        );
    }

    #[tokio::test]
    async fn only_the_definition_last_listed_can_be_approved_and_it_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pins.json");
        let store = PinStore::open(&file).unwrap();
        assert_eq!(
            store.approve_seen("r", "t", "sha256:b").await,
            Err(ApproveError::NoPin)
        );
        store.pin("r", "t", "sha256:a", || json!({"description": "a"}));
        assert_eq!(
            store.approve_seen("r", "t", "sha256:a").await,
            Err(ApproveError::NotSeen { seen: None })
        );
        store.pin("r", "t", "sha256:b", || json!({"description": "b"}));
        assert_eq!(
            store.approve_seen("r", "t", "sha256:c").await,
            Err(ApproveError::NotSeen {
                seen: Some("sha256:b".into())
            })
        );
        let replaced = store.approve_seen("r", "t", "sha256:b").await.unwrap();
        assert_eq!(replaced.hash, "sha256:a");
        assert_eq!(store.pin("r", "t", "sha256:b", || json!({})), Pinned::Same);
        let pins = store.list(Some("r")).await.unwrap();
        assert_eq!(pins["r"]["t"].definition, json!({"description": "b"}));
        // The file has it after the background write.
        for _ in 0..100 {
            let written = PinStore::open(&file).unwrap().get("r", "t");
            if written.is_some_and(|pin| pin.hash == "sha256:b") {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the approval never reached the file");
    }
}
