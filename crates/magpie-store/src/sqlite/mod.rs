//! The SQLite backend of [`Store`](crate::Store): an embedded,
//! single-file durable store.
//!
//! Layout: `schema` (DDL, pragmas, decoders), `writer` (one writer thread with
//! group commit), `writes` (what runs on it), `reads` (read-only pool and
//! queries). A file-backed store runs WAL with `synchronous=FULL`; an
//! in-memory store has a single connection, so its reads go through the
//! writer thread as well.
//!
//! Unlike the sharded SQL stores, a direct message here is its one row
//! (`im_msg_content`): the inbox/outbox index they keep per owner would only
//! repeat what the conversation id (it names both parties) and the
//! (conv, seq) index already give, at twice the writes per message.

mod domains;
mod feeds;
mod group_reads;
mod groups;
mod mutes;
mod profiles;
mod reads;
pub(crate) mod schema;
mod writer;
mod writes;

use crate::RefreshUse;
use crate::backend::AccountStore;
use crate::error::{Result, StoreError};
use crate::store::{ProfileRecord, UserRecord};
use async_trait::async_trait;
use magpie_core::{ClientSettings, DeviceId, UserId, now_ms};
use reads::ReadPool;
use rusqlite::Connection;
use std::path::PathBuf;
use writer::Writer;

/// How long `offline` and `none` messages are kept when nobody reads or
/// receives them: 7 days.
pub const DEFAULT_OFFLINE_TTL_MS: i64 = 7 * 86_400_000;

/// Where reads run.
enum Readers {
    /// Read-only connections on the same file (WAL snapshot reads).
    Pool(ReadPool),
    /// In-memory database: the writer's connection is the only one.
    Writer,
}

pub struct SqliteStore {
    writer: Writer,
    readers: Readers,
    offline_ttl_ms: i64,
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if needed) a database file.
    pub async fn open(path: &str) -> Result<SqliteStore> {
        let path = PathBuf::from(path);
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Config(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            // The writer creates the file and the schema before readers open it.
            let conn = schema::open_writer(&path)?;
            let pool = ReadPool::open(path)?;
            Ok(SqliteStore {
                writer: Writer::spawn(conn)?,
                readers: Readers::Pool(pool),
                offline_ttl_ms: DEFAULT_OFFLINE_TTL_MS,
            })
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite open task failed: {e}")))?
    }

    /// A private in-memory database (tests, `sqlite::memory:`), gone on drop.
    pub async fn open_in_memory() -> Result<SqliteStore> {
        let conn = schema::open_memory()?;
        Ok(SqliteStore {
            writer: Writer::spawn(conn)?,
            readers: Readers::Writer,
            offline_ttl_ms: DEFAULT_OFFLINE_TTL_MS,
        })
    }

    /// Sets how long `offline`/`none` messages live before `delete_expired` takes them.
    pub fn with_offline_ttl_ms(mut self, ms: i64) -> Self {
        self.offline_ttl_ms = ms;
        self
    }

    pub(super) async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        match &self.readers {
            Readers::Pool(pool) => pool.run(f).await,
            Readers::Writer => self.writer.exec(f).await,
        }
    }
}

/// `''` is the settings row of the user default.
fn device_key(device: Option<&DeviceId>) -> String {
    device.map(|d| d.as_str().to_string()).unwrap_or_default()
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_user(&self, username: &str, password_hash: &str) -> Result<UserRecord> {
        let (u, p) = (username.to_string(), password_hash.to_string());
        self.writer
            .exec(move |c| writes::create_user(c, &u, &p, now_ms()))
            .await
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        let u = username.to_string();
        self.read(move |c| reads::user_by_name(c, &u)).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        self.read(move |c| reads::user_by_id(c, id)).await
    }

    async fn put_refresh(
        &self,
        token_hash: &str,
        family: &str,
        user: UserId,
        device: &DeviceId,
        expires_at: i64,
    ) -> Result<()> {
        let (t, f, d) = (
            token_hash.to_string(),
            family.to_string(),
            device.as_str().to_string(),
        );
        self.writer
            .exec(move |c| writes::put_refresh(c, &t, &f, user, &d, expires_at))
            .await
    }

    async fn use_refresh(&self, token_hash: &str, family: &str) -> Result<RefreshUse> {
        let (t, f) = (token_hash.to_string(), family.to_string());
        self.writer
            .exec(move |c| writes::use_refresh(c, &t, &f))
            .await
    }

    async fn put_settings(
        &self,
        user: UserId,
        device: Option<&DeviceId>,
        s: &ClientSettings,
    ) -> Result<()> {
        let (d, s) = (device_key(device), *s);
        self.writer
            .exec(move |c| writes::put_settings(c, user, &d, &s))
            .await
    }

    async fn put_profile(&self, p: &ProfileRecord) -> Result<()> {
        let p = p.clone();
        self.writer.exec(move |c| profiles::put(c, &p)).await
    }

    async fn profiles(&self, users: &[UserId]) -> Result<Vec<ProfileRecord>> {
        let users = users.to_vec();
        self.read(move |c| profiles::get(c, &users)).await
    }

    async fn get_settings(
        &self,
        user: UserId,
        device: Option<&DeviceId>,
    ) -> Result<ClientSettings> {
        let d = device_key(device);
        self.read(move |c| reads::get_settings(c, user, &d)).await
    }

    async fn device_settings(&self, user: UserId) -> Result<Vec<(DeviceId, ClientSettings)>> {
        self.read(move |c| reads::device_settings(c, user)).await
    }
}
