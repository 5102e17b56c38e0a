//! The implementation both SQL dialects share, as a macro over the driver.
//!
//! The logic is identical for PostgreSQL and MySQL; only the sqlx types
//! (pool, connection) and a few statements differ. A generic function over
//! `sqlx::Database` would need a wall of higher-ranked bounds that break on
//! `Send` inside `async_trait`; expanding the same code once per concrete
//! driver keeps it plain. Each dialect module provides the store struct
//! (`pool`, `offline_ttl_ms`), the `Queries` static, and three inherent
//! functions: `insert_user`, `insert_group` and `next_seq` (they need
//! `RETURNING`, which only PostgreSQL has). Groups are in `groups` and
//! `group_reads`, expanded here too.

macro_rules! sql_backend {
    ($store:ident, $db:ty, $q:expr) => {
        // A module of its own, so these imports do not clash with the
        // dialect module's; private items of the parent stay visible.
        mod shared {
            use super::*;
            use crate::error::Result;
            use crate::sql::group_reads::{GroupRow, MemberRow, group_of, member_of};
            use crate::sql::{BOX_RECEIVED, BOX_SENT};
            use crate::sql::{MessageRow, store_err};
            use crate::sql::{
                Retry, conv_of, device_of, expire_at, limit_param, message_of, retrying,
            };
            use crate::store::{ConvSummary, ReadBy, RetentionHit, StoreBackend, UserRecord};
            use magpie_core::{
                Accepted, ClientMsgId, ClientSettings, ConvId, DeviceId, GroupId, GroupInfo,
                GroupRole, MemberInfo, Message, NewMessage, Seq, ServerMsgId, UserId, now_ms,
            };

            type Conn = <$db as sqlx::Database>::Connection;
            type Victim = (i64, String, i64, i64, i64);

            fn user_of(
                (id, username, password_hash, created_at): (i64, String, String, i64),
            ) -> UserRecord {
                UserRecord {
                    id: UserId(id),
                    username,
                    password_hash,
                    created_at,
                }
            }

            fn summary_of(
                (conv, peer, last_seq, read_seq, unread): (String, i64, i64, i64, i64),
            ) -> std::result::Result<ConvSummary, sqlx::Error> {
                Ok(ConvSummary {
                    conv: conv_of(&conv)?,
                    peer: UserId(peer),
                    last_seq,
                    read_seq,
                    unread,
                })
            }

            impl $store {
                /// The stored result for (from, cmid), marked as a duplicate.
                async fn find_cmid(
                    c: &mut Conn,
                    from: UserId,
                    cmid: ClientMsgId,
                ) -> std::result::Result<Option<Accepted>, sqlx::Error> {
                    let row: Option<(i64, String, i64, i64)> =
                        sqlx::query_as($q.lookup_cmid.as_str())
                            .bind(from.0)
                            .bind(cmid.to_string())
                            .fetch_optional(&mut *c)
                            .await?;
                    row.map(|(server_id, conv, seq, sent_at)| {
                        Ok(Accepted {
                            server_id: ServerMsgId(server_id),
                            conv: conv_of(&conv)?,
                            seq,
                            sent_at,
                            duplicate: true,
                        })
                    })
                    .transpose()
                }

                /// One attempt at `accept`: the whole batch in one transaction.
                /// Each message is written before the next is looked up, so a
                /// repeat inside the batch finds the first. A racing transaction
                /// with the same (from, cmid) makes the content insert fail on
                /// the unique key; `accept` then retries and finds the winner.
                /// A refused group send (`Forbidden`) is checked before its
                /// sequence is taken, so it writes nothing and the others go on.
                async fn accept_once(
                    &self,
                    batch: &[NewMessage],
                ) -> std::result::Result<Vec<crate::Outcome>, sqlx::Error> {
                    let mut tx = self.pool.begin().await?;
                    // A batch spanning conversations locks their rows up front in
                    // one global order; otherwise two batches naming the same
                    // conversations in opposite orders deadlock (and PostgreSQL
                    // takes `deadlock_timeout`, 1 s, to notice each time).
                    let mut convs: Vec<&str> = batch.iter().map(|m| m.conv.as_str()).collect();
                    convs.sort_unstable();
                    convs.dedup();
                    if convs.len() > 1 {
                        for conv in convs {
                            sqlx::query($q.lock_conv.as_str())
                                .bind(conv)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    let mut out = Vec::with_capacity(batch.len());
                    for m in batch {
                        if let Some(found) = Self::find_cmid(&mut tx, m.from, m.cmid).await? {
                            out.push(Ok(found));
                            continue;
                        }
                        // Checked after the conversation row is locked, to keep
                        // the lock order of `groups`, and before its sequence is
                        // taken, so a refusal writes nothing.
                        let group = m.conv.group_id();
                        if let Some(g) = group {
                            sqlx::query($q.lock_conv.as_str())
                                .bind(m.conv.as_str())
                                .execute(&mut *tx)
                                .await?;
                            if let Some(refused) = Self::check_sender(&mut tx, g, m.from).await? {
                                out.push(Err(refused));
                                continue;
                            }
                        }
                        // Locks the conversation row until COMMIT: the only
                        // guarantee that no two messages share (conv, seq).
                        let seq = Self::next_seq(&mut tx, m.conv.as_str()).await?;
                        sqlx::query($q.insert_content.as_str())
                            .bind(m.server_id.0)
                            .bind(m.conv.as_str())
                            .bind(seq)
                            .bind(m.from.0)
                            .bind(m.to.0)
                            .bind(m.cmid.to_string())
                            .bind(m.body.as_str())
                            .bind(m.persistence.to_string())
                            .bind(m.sent_at)
                            .bind(expire_at(m.persistence, m.sent_at, self.offline_ttl_ms))
                            .execute(&mut *tx)
                            .await?;
                        // A note to self has one owner: one (outbox) row, one
                        // summary. A group message has none (read diffusion);
                        // its sender has read it.
                        let mut owners = Vec::with_capacity(2);
                        if let Some(g) = group {
                            Self::advance_read(&mut tx, g, m.from, seq).await?;
                        } else {
                            owners.push((m.from, m.to, BOX_SENT));
                            if m.from != m.to {
                                owners.push((m.to, m.from, BOX_RECEIVED));
                            }
                        }
                        for (owner, other, box_type) in owners {
                            sqlx::query($q.insert_box.as_str())
                                .bind(owner.0)
                                .bind(other.0)
                                .bind(m.conv.as_str())
                                .bind(seq)
                                .bind(m.server_id.0)
                                .bind(box_type)
                                .execute(&mut *tx)
                                .await?;
                            sqlx::query($q.upsert_summary.as_str())
                                .bind(owner.0)
                                .bind(m.conv.as_str())
                                .bind(other.0)
                                .bind(seq)
                                .execute(&mut *tx)
                                .await?;
                        }
                        out.push(Ok(Accepted {
                            server_id: m.server_id,
                            conv: m.conv.clone(),
                            seq,
                            sent_at: m.sent_at,
                            duplicate: false,
                        }));
                    }
                    tx.commit().await?;
                    Ok(out)
                }

                /// Deletes the messages `victims` names (body and both box rows)
                /// and reports them. A victim whose body is already gone was
                /// taken by a concurrent sweep (another node) and is not
                /// reported twice.
                async fn delete_victims(
                    tx: &mut Conn,
                    victims: Vec<Victim>,
                ) -> std::result::Result<Vec<RetentionHit>, sqlx::Error> {
                    let mut hits = Vec::with_capacity(victims.len());
                    for (server_id, conv, seq, from, to) in victims {
                        let gone = sqlx::query($q.del_body.as_str())
                            .bind(from)
                            .bind(server_id)
                            .execute(&mut *tx)
                            .await?;
                        if gone.rows_affected() == 0 {
                            continue;
                        }
                        sqlx::query($q.del_box.as_str())
                            .bind(from)
                            .bind(to)
                            .bind(conv.as_str())
                            .bind(seq)
                            .execute(&mut *tx)
                            .await?;
                        hits.push(RetentionHit {
                            conv: conv_of(&conv)?,
                            seq,
                            to: UserId(to),
                        });
                    }
                    Ok(hits)
                }

                async fn summaries(
                    &self,
                    owner: UserId,
                    conv: Option<&ConvId>,
                ) -> Result<Vec<ConvSummary>> {
                    let rows: Vec<(String, i64, i64, i64, i64)> = match conv {
                        Some(conv) => {
                            sqlx::query_as($q.conversation.as_str())
                                .bind(owner.0)
                                .bind(conv.as_str())
                                .fetch_all(&self.pool)
                                .await
                        }
                        None => {
                            sqlx::query_as($q.conversations.as_str())
                                .bind(owner.0)
                                .fetch_all(&self.pool)
                                .await
                        }
                    }
                    .map_err(store_err)?;
                    rows.into_iter()
                        .map(summary_of)
                        .collect::<std::result::Result<_, _>>()
                        .map_err(store_err)
                }

                async fn messages(
                    &self,
                    sql: &'static str,
                    owner: UserId,
                    conv: &ConvId,
                    from: Seq,
                    limit: usize,
                ) -> Result<Vec<Message>> {
                    let rows: Vec<MessageRow> = sqlx::query_as(sql)
                        .bind(owner.0)
                        .bind(conv.as_str())
                        .bind(from)
                        .bind(limit_param(limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(store_err)?;
                    rows.into_iter()
                        .map(message_of)
                        .collect::<std::result::Result<_, _>>()
                        .map_err(store_err)
                }
            }

            crate::sql::group_reads::sql_group_reads!($store, $q);
            // Expands `sql_trait_impl!` with the group methods.
            crate::sql::groups::sql_groups!($store, $q);
        }
    };
}

pub(crate) use sql_backend;
