//! `SqlStore`: connecting, and the account and retention domains.
//!
//! Reads run on a pooled connection outside any transaction (each is one
//! statement); every write is one transaction, retried as a whole on
//! deadlocks and serialization failures (see `sql::retrying`).

use super::batch::BatchSql;
use super::db::{Arg, Exec, Rec, args};
use super::dialect::Dialect;
use super::feed_queries::FeedQueries;
use super::group_queries::GroupQueries;
use super::pool::Pool;
use super::queries::{Queries, Statements};
use super::{POOL_SIZE, Retry, conv_of, device_of, limit_param, retrying, store_err};
use crate::backend::{AccountStore, RetentionStore};
use crate::error::{Result, StoreError};
use crate::shards::Place;
use crate::store::{ProfileRecord, RefreshUse, RetentionHit, Retire, UserRecord};
use async_trait::async_trait;
use magpie_core::{ClientSettings, DeviceId, UserId, now_ms};

/// The durable store on PostgreSQL or MySQL/MariaDB, chosen by URL.
pub struct SqlStore {
    pub(super) pool: Pool,
    /// The statements in this database's dialect.
    pub(super) q: &'static Queries,
    pub(super) g: &'static GroupQueries,
    pub(super) f: &'static FeedQueries,
    pub(super) b: &'static BatchSql,
    pub(super) offline_ttl_ms: i64,
}

/// How a SQL store is opened (`Store::open_with` fills it from `StoreOptions`).
#[derive(Debug, Clone, Copy)]
pub struct SqlOptions {
    /// How long `none` and `offline` messages are kept at most, ms.
    pub offline_ttl_ms: i64,
    /// Hash partitions of the message tables of a new database.
    pub partitions: u32,
    /// Pooled connections (each node holds one pool per database).
    pub pool_size: u32,
    /// The database's place in the shard map.
    pub place: Place,
}

impl Default for SqlOptions {
    fn default() -> Self {
        SqlOptions {
            offline_ttl_ms: crate::sqlite::DEFAULT_OFFLINE_TTL_MS,
            partitions: super::DEFAULT_PARTITIONS,
            pool_size: POOL_SIZE,
            place: Place::ALONE,
        }
    }
}

/// A message retention removes: server id, conv, seq, from, to.
type DoomedRow = (i64, String, i64, i64, i64);

impl SqlStore {
    /// Connects with `POOL_SIZE` connections to `postgres://…` or
    /// `mysql://…`, creating or upgrading the schema first (`partitions`
    /// applies only to a new database).
    pub async fn connect(url: &str, offline_ttl_ms: i64, partitions: u32) -> Result<SqlStore> {
        let opts = SqlOptions {
            offline_ttl_ms,
            partitions,
            ..SqlOptions::default()
        };
        SqlStore::open(url, &opts).await
    }

    /// Connects as `opts` says, creating or upgrading the schema first and
    /// checking the database's place in the shard map.
    pub async fn open(url: &str, opts: &SqlOptions) -> Result<SqlStore> {
        let dialect = Dialect::of(url)?;
        super::migrate::migrate_with(url, opts.partitions, opts.place).await?;
        Ok(SqlStore {
            pool: Pool::connect(dialect, url, opts.pool_size.max(1), opts.place).await?,
            q: &Statements::of(dialect).q,
            g: &Statements::of(dialect).g,
            f: &Statements::of(dialect).f,
            b: BatchSql::of(dialect),
            offline_ttl_ms: opts.offline_ttl_ms,
        })
    }

    /// One statement on a pooled connection: its first row, if any.
    pub(super) async fn read_opt<T: Rec>(
        &self,
        sql: &'static str,
        a: Vec<Arg<'_>>,
    ) -> Result<Option<T>> {
        Ok(self.read_all(sql, a).await?.into_iter().next())
    }

    /// One statement on a pooled connection: every row.
    pub(super) async fn read_all<T: Rec>(
        &self,
        sql: &'static str,
        a: Vec<Arg<'_>>,
    ) -> Result<Vec<T>> {
        let mut c = self.pool.acquire().await.map_err(store_err)?;
        c.exec().all(sql, a).await.map_err(store_err)
    }

    /// Deletes the messages `doomed` names (body and both index rows) and
    /// reports them. A row whose body is already gone was taken by a
    /// concurrent sweep (another node) and is not reported twice.
    async fn delete_doomed(
        &self,
        x: &mut Exec<'_>,
        doomed: Vec<DoomedRow>,
    ) -> super::db::Sqlx<Vec<RetentionHit>> {
        let mut hits = Vec::with_capacity(doomed.len());
        for (server_id, conv, seq, from, to) in doomed {
            let gone = x.execute(self.q.del_body.as_str(), args![from, server_id]);
            if gone.await? == 0 {
                continue;
            }
            x.execute(self.q.del_box.as_str(), args![from, to, conv.as_str(), seq])
                .await?;
            hits.push(RetentionHit {
                conv: conv_of(&conv)?,
                seq,
                to: UserId(to),
            });
        }
        Ok(hits)
    }

    /// Selects doomed with `sql` and deletes them, in one transaction.
    async fn delete_selected(
        &self,
        what: &str,
        sql: &'static str,
        select: impl Fn() -> Vec<Arg<'static>>,
    ) -> Result<Vec<RetentionHit>> {
        retrying(what, Retry::Transient, || async {
            let mut tx = self.pool.begin().await?;
            let doomed: Vec<DoomedRow> = tx.exec().all(sql, select()).await?;
            let hits = self.delete_doomed(&mut tx.exec(), doomed).await?;
            tx.commit().await?;
            Ok(hits)
        })
        .await
    }
}

fn user_of((id, username, password_hash, created_at): (i64, String, String, i64)) -> UserRecord {
    UserRecord {
        id: UserId(id),
        username,
        password_hash,
        created_at,
    }
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn create_user(&self, username: &str, password_hash: &str) -> Result<UserRecord> {
        let now = now_ms();
        let id = retrying("create_user", Retry::Transient, || async {
            let mut c = self.pool.acquire().await?;
            let sql = self.q.insert_user.as_str();
            c.exec()
                .insert_id(sql, args![username, password_hash, now])
                .await
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict(format!("username {username:?}")),
            other => other,
        })?;
        Ok(UserRecord {
            id: UserId(id),
            username: username.to_string(),
            password_hash: password_hash.to_string(),
            created_at: now,
        })
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        let row = self.read_opt(self.q.user_by_name.as_str(), args![username]);
        Ok(row.await?.map(user_of))
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        let row = self.read_opt(self.q.user_by_id.as_str(), args![id.0]);
        Ok(row.await?.map(user_of))
    }

    async fn put_refresh(
        &self,
        token_hash: &str,
        family: &str,
        user: UserId,
        device: &DeviceId,
        expires_at: i64,
    ) -> Result<()> {
        let a = args![token_hash, family, user.0, device.as_str(), expires_at];
        let mut c = self.pool.acquire().await.map_err(store_err)?;
        c.exec()
            .execute(self.q.put_refresh.as_str(), a)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    /// Read, then mark: only the caller whose UPDATE changed the row has
    /// the fresh use; anyone else finding the row has replayed it. The read
    /// comes first because a replayer revokes the family (deleting the row)
    /// as soon as the winner's mark is committed: a winner reading after
    /// its mark could find nothing and answer `Unknown`, leaving no use
    /// fresh (`concurrent_refresh_uses_agree`).
    async fn use_refresh(&self, token_hash: &str, family: &str) -> Result<RefreshUse> {
        let mut c = self.pool.acquire().await.map_err(store_err)?;
        let mut x = c.exec();
        let row: Option<(i64, String, i64)> = x
            .optional(self.q.get_refresh.as_str(), args![token_hash])
            .await
            .map_err(store_err)?;
        let Some((user, device, expires_at)) = row else {
            return Ok(RefreshUse::Unknown);
        };
        let (user, device) = (UserId(user), device_of(device).map_err(store_err)?);
        let marked = x.execute(self.q.mark_refresh.as_str(), args![token_hash]);
        let marked = marked.await.map_err(store_err)? == 1;
        if marked {
            let a = args![family, magpie_core::now_ms()];
            x.execute(self.q.purge_family.as_str(), a)
                .await
                .map_err(store_err)?;
            return Ok(RefreshUse::Fresh {
                user,
                device,
                expires_at,
            });
        }
        let revoke = if family.is_empty() {
            x.execute(self.q.del_refresh.as_str(), args![token_hash])
        } else {
            x.execute(self.q.revoke_family.as_str(), args![family])
        };
        revoke.await.map_err(store_err)?;
        Ok(RefreshUse::Reused { user, device })
    }

    async fn put_settings(
        &self,
        user: UserId,
        device: Option<&DeviceId>,
        s: &ClientSettings,
    ) -> Result<()> {
        let json =
            serde_json::to_string(s).map_err(|e| StoreError::Corrupt(format!("settings: {e}")))?;
        // `''` is the settings row of the user default.
        let device = device.map(|d| d.as_str()).unwrap_or("");
        retrying("put_settings", Retry::Transient, || async {
            let mut c = self.pool.acquire().await?;
            let a = args![user.0, device, json.as_str()];
            c.exec().execute(self.q.put_settings.as_str(), a).await
        })
        .await?;
        Ok(())
    }

    async fn put_profile(&self, p: &ProfileRecord) -> Result<()> {
        self.put_profile_row(p).await
    }

    async fn profiles(&self, users: &[UserId]) -> Result<Vec<ProfileRecord>> {
        self.profile_rows(users).await
    }

    async fn get_settings(
        &self,
        user: UserId,
        device: Option<&DeviceId>,
    ) -> Result<ClientSettings> {
        let device = device.map(|d| d.as_str()).unwrap_or("");
        let json: Option<(String,)> = self
            .read_opt(self.q.get_settings.as_str(), args![user.0, device])
            .await?;
        match json {
            Some((j,)) => serde_json::from_str(&j)
                .map_err(|e| StoreError::Corrupt(format!("settings of user {user}: {e}"))),
            None => Ok(ClientSettings::default()),
        }
    }

    async fn device_settings(&self, user: UserId) -> Result<Vec<(DeviceId, ClientSettings)>> {
        let rows: Vec<(String, String)> = self
            .read_all(self.q.device_settings.as_str(), args![user.0])
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (device, json) in rows {
            let s: ClientSettings = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("settings of user {user}: {e}")))?;
            // A row whose device id is no longer valid is skipped.
            if let Ok(d) = DeviceId::new(device) {
                out.push((d, s));
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl RetentionStore for SqlStore {
    async fn retire(&self, what: Retire) -> Result<Vec<RetentionHit>> {
        let q = self.q;
        match what {
            Retire::Expired { now, limit } => {
                // Mentions of expired messages already count for no one
                // (the count joins the message); their rows go with the sweep.
                {
                    let mut c = self.pool.acquire().await.map_err(store_err)?;
                    let mut x = c.exec();
                    let gone = x.execute(q.expired_mentions.as_str(), args![now]);
                    gone.await.map_err(store_err)?;
                }
                let a = || args![now, limit_param(limit)];
                self.delete_selected("delete_expired", q.expired.as_str(), a)
                    .await
            }
            Retire::Read { to, conv, up_to } => {
                let a = || args![conv.as_str().to_string(), to.0, up_to];
                self.delete_selected("delete_read", q.read_upto.as_str(), a)
                    .await
            }
            Retire::Delivered { to, conv, seqs } => {
                retrying("delete_delivered", Retry::Transient, || async {
                    let mut tx = self.pool.begin().await?;
                    let mut hits = Vec::new();
                    for &seq in &seqs {
                        let a = args![conv.as_str(), seq, to.0];
                        let doomed: Vec<DoomedRow> = tx.exec().all(q.delivered.as_str(), a).await?;
                        hits.extend(self.delete_doomed(&mut tx.exec(), doomed).await?);
                    }
                    tx.commit().await?;
                    Ok(hits)
                })
                .await
            }
        }
    }
}
