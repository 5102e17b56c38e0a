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
    ($store:ident, $db:ty, $q:expr, $b:expr) => {
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

            crate::sql::accept::sql_accept!($store, $db, $q, $b);
            crate::sql::group_reads::sql_group_reads!($store, $q);
            // Expands `sql_trait_impl!` with the group methods.
            crate::sql::groups::sql_groups!($store, $q);
        }
    };
}

pub(crate) use sql_backend;
