//! `impl StoreBackend` for both SQL dialects, expanded by `sql_backend!`
//! (which brings the helpers and imports it uses into scope).
//!
//! Reads run on the pool outside any transaction (each is one statement);
//! every write is one transaction, retried as a whole on deadlocks and
//! serialization failures (see `sql::retrying`). The group methods come
//! from `sql_groups!`, which passes them in as `[ methods ]`.

macro_rules! sql_trait_impl {
    ($store:ident, $q:expr, [$($groups:tt)*]) => {
        #[async_trait::async_trait]
        impl StoreBackend for $store {
            async fn create_user(&self, username: &str, password_hash: &str) -> Result<UserRecord> {
                let now = now_ms();
                let id = retrying("create_user", Retry::Transient, || {
                    self.insert_user(username, password_hash, now)
                })
                .await
                .map_err(|e| match e {
                    crate::StoreError::Conflict(_) => {
                        crate::StoreError::Conflict(format!("username {username:?}"))
                    }
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
                let row = sqlx::query_as($q.user_by_name.as_str())
                    .bind(username)
                    .fetch_optional(&self.pool)
                    .await;
                Ok(row.map_err(store_err)?.map(user_of))
            }

            async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
                let row = sqlx::query_as($q.user_by_id.as_str())
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await;
                Ok(row.map_err(store_err)?.map(user_of))
            }

            async fn put_refresh(
                &self,
                token_hash: &str,
                user: UserId,
                device: &DeviceId,
                expires_at: i64,
            ) -> Result<()> {
                sqlx::query($q.put_refresh.as_str())
                    .bind(token_hash)
                    .bind(user.0)
                    .bind(device.as_str())
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await
                    .map_err(store_err)?;
                Ok(())
            }

            /// Read, then delete: only the caller whose DELETE removed the
            /// row gets it, so two concurrent takes cannot both succeed.
            async fn take_refresh(
                &self,
                token_hash: &str,
            ) -> Result<Option<(UserId, DeviceId, i64)>> {
                let row: Option<(i64, String, i64)> = sqlx::query_as($q.get_refresh.as_str())
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_err)?;
                let Some((user, device, expires_at)) = row else {
                    return Ok(None);
                };
                let gone = sqlx::query($q.del_refresh.as_str())
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await
                    .map_err(store_err)?;
                if gone.rows_affected() == 0 {
                    return Ok(None);
                }
                Ok(Some((
                    UserId(user),
                    device_of(device).map_err(store_err)?,
                    expires_at,
                )))
            }

            async fn put_settings(
                &self,
                user: UserId,
                device: Option<&DeviceId>,
                s: &ClientSettings,
            ) -> Result<()> {
                let json = serde_json::to_string(s)
                    .map_err(|e| crate::StoreError::Corrupt(format!("settings: {e}")))?;
                // `''` is the settings row of the user default.
                let device = device.map(|d| d.as_str()).unwrap_or("");
                retrying("put_settings", Retry::Transient, || {
                    sqlx::query($q.put_settings.as_str())
                        .bind(user.0)
                        .bind(device)
                        .bind(json.as_str())
                        .execute(&self.pool)
                })
                .await?;
                Ok(())
            }

            async fn get_settings(
                &self,
                user: UserId,
                device: Option<&DeviceId>,
            ) -> Result<ClientSettings> {
                let device = device.map(|d| d.as_str()).unwrap_or("");
                let json: Option<(String,)> = sqlx::query_as($q.get_settings.as_str())
                    .bind(user.0)
                    .bind(device)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_err)?;
                match json {
                    Some((j,)) => serde_json::from_str(&j).map_err(|e| {
                        crate::StoreError::Corrupt(format!("settings of user {user}: {e}"))
                    }),
                    None => Ok(ClientSettings::default()),
                }
            }

            async fn accept(&self, batch: Vec<NewMessage>) -> Result<Vec<crate::Outcome>> {
                // Optimistic first: a stored duplicate is rare (a retry whose
                // answer was lost) and makes the content insert fail on the
                // unique key; every later attempt looks the batch up first.
                let mut attempt = 0;
                retrying("accept", Retry::TransientAndUnique, || {
                    attempt += 1;
                    self.accept_once(&batch, attempt > 1)
                })
                .await
            }

            async fn lookup_cmid(
                &self,
                from: UserId,
                cmid: ClientMsgId,
            ) -> Result<Option<Accepted>> {
                let mut c = self.pool.acquire().await.map_err(store_err)?;
                Self::find_cmid(&mut c, from, cmid).await.map_err(store_err)
            }

            async fn messages_after(
                &self,
                owner: UserId,
                conv: &ConvId,
                after: Seq,
                limit: usize,
            ) -> Result<Vec<Message>> {
                if let Some(g) = conv.group_id() {
                    return self
                        .group_messages($q.group_after.as_str(), g, owner, after, limit)
                        .await;
                }
                self.messages($q.messages_after.as_str(), owner, conv, after, limit)
                    .await
            }

            async fn messages_before(
                &self,
                owner: UserId,
                conv: &ConvId,
                before: Seq,
                limit: usize,
            ) -> Result<Vec<Message>> {
                if let Some(g) = conv.group_id() {
                    return self
                        .group_messages($q.group_before.as_str(), g, owner, before, limit)
                        .await;
                }
                self.messages($q.messages_before.as_str(), owner, conv, before, limit)
                    .await
            }

            async fn group_conversations(&self, owner: UserId) -> Result<Vec<ConvSummary>> {
                self.group_summaries(owner, None).await
            }

            /// Direct conversations, then groups by group id.
            async fn conversations(&self, owner: UserId) -> Result<Vec<ConvSummary>> {
                let mut all = self.summaries(owner, None).await?;
                all.extend(self.group_summaries(owner, None).await?);
                Ok(all)
            }

            async fn conversation(
                &self,
                owner: UserId,
                conv: &ConvId,
            ) -> Result<Option<ConvSummary>> {
                if let Some(g) = conv.group_id() {
                    return Ok(self.group_summaries(owner, Some(g)).await?.pop());
                }
                Ok(self.summaries(owner, Some(conv)).await?.pop())
            }

            /// max(current, min(seq, last_seq)); 0 without writing for a
            /// conversation the owner does not have. UPDATE then SELECT in one
            /// transaction (MySQL has no UPDATE … RETURNING): the SELECT sees
            /// this transaction's own write.
            async fn set_read(&self, owner: UserId, conv: &ConvId, seq: Seq) -> Result<Seq> {
                if let Some(g) = conv.group_id() {
                    return self.set_group_read(g, owner, seq).await;
                }
                retrying("set_read", Retry::Transient, || async {
                    let mut tx = self.pool.begin().await?;
                    sqlx::query($q.set_read.as_str())
                        .bind(seq)
                        .bind(owner.0)
                        .bind(conv.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let pos: Option<(i64,)> = sqlx::query_as($q.get_read.as_str())
                        .bind(owner.0)
                        .bind(conv.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(pos.map_or(0, |(p,)| p))
                })
                .await
            }

            async fn delete_expired(&self, now: i64, limit: usize) -> Result<Vec<RetentionHit>> {
                retrying("delete_expired", Retry::Transient, || async {
                    let mut tx = self.pool.begin().await?;
                    let victims: Vec<Victim> = sqlx::query_as($q.expired.as_str())
                        .bind(now)
                        .bind(limit_param(limit))
                        .fetch_all(&mut *tx)
                        .await?;
                    let hits = Self::delete_victims(&mut tx, victims).await?;
                    tx.commit().await?;
                    Ok(hits)
                })
                .await
            }

            async fn delete_delivered(
                &self,
                to: UserId,
                conv: &ConvId,
                seqs: &[Seq],
            ) -> Result<Vec<RetentionHit>> {
                retrying("delete_delivered", Retry::Transient, || async {
                    let mut tx = self.pool.begin().await?;
                    let mut hits = Vec::new();
                    for &seq in seqs {
                        let victims: Vec<Victim> = sqlx::query_as($q.delivered.as_str())
                            .bind(conv.as_str())
                            .bind(seq)
                            .bind(to.0)
                            .fetch_all(&mut *tx)
                            .await?;
                        hits.extend(Self::delete_victims(&mut tx, victims).await?);
                    }
                    tx.commit().await?;
                    Ok(hits)
                })
                .await
            }

            async fn delete_read(
                &self,
                to: UserId,
                conv: &ConvId,
                up_to: Seq,
            ) -> Result<Vec<RetentionHit>> {
                retrying("delete_read", Retry::Transient, || async {
                    let mut tx = self.pool.begin().await?;
                    let victims: Vec<Victim> = sqlx::query_as($q.read_upto.as_str())
                        .bind(conv.as_str())
                        .bind(to.0)
                        .bind(up_to)
                        .fetch_all(&mut *tx)
                        .await?;
                    let hits = Self::delete_victims(&mut tx, victims).await?;
                    tx.commit().await?;
                    Ok(hits)
                })
                .await
            }

            $($groups)*
        }
    };
}

pub(crate) use sql_trait_impl;
