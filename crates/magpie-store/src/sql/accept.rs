//! `accept` for both SQL dialects, as a macro over the driver (see
//! `backend.rs` for why a macro).
//!
//! One transaction per batch, and for direct messages one multi-row
//! statement per step whatever the batch's size (`batch.rs`): lock the
//! conversations in sorted order, add each conversation's count to its `last_seq`, read the new
//! values back, then insert bodies, box rows and summaries. A group message
//! keeps its own statements (membership check, the sender's read position),
//! under the lock taken with the others.
//!
//! Invariants (ARCHITECTURE.md): sequences are contiguous per conversation
//! and handed out only with their message in the same transaction; a
//! message's fate is decided in batch order, so a repeat of (from, cmid)
//! inside a batch answers like the first; a refused group send writes
//! nothing and the others go on. A (from, cmid) stored before, or by a
//! racing transaction, makes the content insert fail on the unique key;
//! `accept` then retries, looking every pair up first, and finds it.

macro_rules! sql_accept {
    ($store:ident, $db:ty, $q:expr, $b:expr) => {
        use crate::sql::batch::CHUNK;
        /// A statement being bound, whatever the driver.
        type Query = sqlx::query::Query<'static, $db, <$db as sqlx::Database>::Arguments>;
        use std::collections::{BTreeMap, HashMap};

        /// What becomes of one message of a batch, decided before any write.
        enum Fate {
            /// Stored by an earlier transaction.
            Stored(Accepted),
            /// A repeat of the batch's message at this index.
            Repeat(usize),
            New,
        }

        /// Binds a message's body row (the ten columns of `im_msg_content`,
        /// in the order of `insert_content` and `batch::contents`).
        fn bind_content(q: Query, m: &NewMessage, seq: i64, ttl_ms: i64) -> Query {
            q.bind(m.server_id.0)
                .bind(m.conv.as_str())
                .bind(seq)
                .bind(m.from.0)
                .bind(m.to.0)
                .bind(m.cmid.to_string())
                .bind(m.body.as_str())
                .bind(m.persistence.to_string())
                .bind(m.sent_at)
                .bind(expire_at(m.persistence, m.sent_at, ttl_ms))
        }

        /// The same refusal again, for a repeat of a refused message.
        fn again(e: &crate::StoreError) -> crate::StoreError {
            use crate::StoreError as E;
            match e {
                E::Conflict(s) => E::Conflict(s.clone()),
                E::Forbidden(s) => E::Forbidden(s.clone()),
                E::Unavailable(s) => E::Unavailable(s.clone()),
                E::Config(s) => E::Config(s.clone()),
                E::Corrupt(s) => E::Corrupt(s.clone()),
            }
        }

        impl $store {
            /// The stored results of the batch's (from, cmid) pairs: one
            /// primary-key probe each (a single statement with one condition
            /// per pair costs the planner more than the probes).
            async fn stored_cmids(
                c: &mut Conn,
                batch: &[NewMessage],
            ) -> std::result::Result<HashMap<(i64, ClientMsgId), Accepted>, sqlx::Error> {
                let mut found = HashMap::new();
                for m in batch {
                    if let Some(a) = Self::find_cmid(&mut *c, m.from, m.cmid).await? {
                        found.insert((m.from.0, m.cmid), a);
                    }
                }
                Ok(found)
            }

            /// Runs `sql(n)` over `rows` in chunks, binding each row with `bind`.
            async fn each_chunk<R>(
                c: &mut Conn,
                rows: &[R],
                sql: impl Fn(usize) -> String,
                bind: impl Fn(Query, &R) -> Query,
            ) -> std::result::Result<(), sqlx::Error> {
                for chunk in rows.chunks(CHUNK) {
                    let mut q =
                        sqlx::query(sqlx::AssertSqlSafe(sql(chunk.len()))).persistent(false);
                    for r in chunk {
                        q = bind(q, r);
                    }
                    q.execute(&mut *c).await?;
                }
                Ok(())
            }

            /// One attempt at `accept`: the whole batch in one transaction.
            /// Without `look_up`, (from, cmid) pairs stored before are not
            /// searched for: one makes the content insert fail on the unique
            /// key, and the caller tries again looking them up.
            async fn accept_once(
                &self,
                batch: &[NewMessage],
                look_up: bool,
            ) -> std::result::Result<Vec<crate::Outcome>, sqlx::Error> {
                let mut tx = self.pool.begin().await?;
                let stored = if look_up {
                    Self::stored_cmids(&mut tx, batch).await?
                } else {
                    HashMap::new()
                };
                let mut first: HashMap<(i64, ClientMsgId), usize> = HashMap::new();
                let fates: Vec<Fate> = batch
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        let key = (m.from.0, m.cmid);
                        if let Some(a) = stored.get(&key) {
                            Fate::Stored(a.clone())
                        } else if let Some(&j) = first.get(&key) {
                            Fate::Repeat(j)
                        } else {
                            first.insert(key, i);
                            Fate::New
                        }
                    })
                    .collect();
                let new = |i: &usize| matches!(fates[*i], Fate::New);
                let idx: Vec<usize> = (0..batch.len()).filter(new).collect();

                // Locks first, in one global order, so no two batches deadlock.
                // One direct conversation alone is locked by its own upsert.
                let mut convs: Vec<&str> = idx.iter().map(|&i| batch[i].conv.as_str()).collect();
                convs.sort_unstable();
                convs.dedup();
                let groups = idx.iter().any(|&i| batch[i].conv.group_id().is_some());
                if convs.len() > 1 || groups {
                    Self::each_chunk(
                        &mut tx,
                        &convs,
                        |n| $b.lock_convs(n),
                        |q, c| q.bind(*c).bind(0i64),
                    )
                    .await?;
                }

                let mut out: Vec<Option<crate::Outcome>> = (0..batch.len()).map(|_| None).collect();
                // Direct messages: sequences for all of them at once.
                let direct: Vec<usize> = idx
                    .iter()
                    .copied()
                    .filter(|&i| batch[i].conv.group_id().is_none())
                    .collect();
                let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
                for &i in &direct {
                    *counts.entry(batch[i].conv.as_str()).or_default() += 1;
                }
                let counted: Vec<(&str, i64)> = counts.iter().map(|(c, n)| (*c, *n)).collect();
                Self::each_chunk(
                    &mut tx,
                    &counted,
                    |n| $b.add_seqs(n),
                    |q, (c, n)| q.bind(*c).bind(*n),
                )
                .await?;
                // The first sequence of each conversation's run in this batch.
                let mut next: HashMap<String, i64> = HashMap::new();
                for chunk in counted.chunks(CHUNK) {
                    let sql = $b.last_seqs(chunk.len());
                    let mut q = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql))
                        .persistent(false);
                    for (c, _) in chunk {
                        q = q.bind(*c);
                    }
                    for (conv, last) in q.fetch_all(&mut *tx).await? {
                        let n = counts.get(conv.as_str()).copied().unwrap_or(0);
                        next.insert(conv, last - n + 1);
                    }
                }
                let mut seqs: Vec<(usize, i64)> = Vec::with_capacity(direct.len());
                for &i in &direct {
                    let m = &batch[i];
                    let slot = next.get_mut(m.conv.as_str()).ok_or_else(|| {
                        sqlx::Error::Protocol(format!("no sequence for {}", m.conv.as_str()))
                    })?;
                    seqs.push((i, *slot));
                    *slot += 1;
                }
                let ttl = self.offline_ttl_ms;
                Self::each_chunk(
                    &mut tx,
                    &seqs,
                    |n| $b.contents(n),
                    |q, (i, seq)| bind_content(q, &batch[*i], *seq, ttl),
                )
                .await?;
                // Box rows: the sender's copy, and the receiver's unless it is a
                // note to self. Summaries: the newest sequence per (owner, conv).
                let mut boxes: Vec<(i64, i64, &str, i64, i64, i64)> = Vec::new();
                let mut summaries: BTreeMap<(i64, &str), (i64, i64)> = BTreeMap::new();
                for &(i, seq) in &seqs {
                    let m = &batch[i];
                    let mut owners = vec![(m.from.0, m.to.0, BOX_SENT)];
                    if m.from != m.to {
                        owners.push((m.to.0, m.from.0, BOX_RECEIVED));
                    }
                    for (owner, other, box_type) in owners {
                        boxes.push((owner, other, m.conv.as_str(), seq, m.server_id.0, box_type));
                        let s = summaries
                            .entry((owner, m.conv.as_str()))
                            .or_insert((other, seq));
                        *s = (other, s.1.max(seq));
                    }
                    out[i] = Some(Ok(Accepted {
                        server_id: m.server_id,
                        conv: m.conv.clone(),
                        seq,
                        sent_at: m.sent_at,
                        duplicate: false,
                    }));
                }
                Self::each_chunk(
                    &mut tx,
                    &boxes,
                    |n| $b.boxes(n),
                    |q, b| {
                        q.bind(b.0)
                            .bind(b.1)
                            .bind(b.2)
                            .bind(b.3)
                            .bind(b.4)
                            .bind(b.5)
                    },
                )
                .await?;
                let summaries: Vec<_> = summaries.into_iter().collect();
                Self::each_chunk(
                    &mut tx,
                    &summaries,
                    |n| $b.summaries(n),
                    |q, ((owner, conv), (peer, seq))| {
                        q.bind(*owner).bind(*conv).bind(*peer).bind(*seq)
                    },
                )
                .await?;

                // Group messages, in batch order, under the locks taken above.
                for &i in idx.iter().filter(|&&i| batch[i].conv.group_id().is_some()) {
                    out[i] = Some(self.accept_group(&mut tx, &batch[i]).await?);
                }
                tx.commit().await?;

                let mut done: Vec<crate::Outcome> = Vec::with_capacity(batch.len());
                for (i, fate) in fates.into_iter().enumerate() {
                    let outcome = match fate {
                        Fate::Stored(a) => Ok(a),
                        Fate::New => out[i].take().unwrap_or_else(|| {
                            Err(crate::StoreError::Corrupt(
                                "a message was not decided".into(),
                            ))
                        }),
                        Fate::Repeat(j) => match &done[j] {
                            Ok(a) => Ok(Accepted {
                                duplicate: true,
                                ..a.clone()
                            }),
                            Err(e) => Err(again(e)),
                        },
                    };
                    done.push(outcome);
                }
                Ok(done)
            }

            /// One group message: the sender must be a member (checked before
            /// its sequence is taken, so a refusal writes nothing); it has read
            /// what it sent. The conversation row is locked already.
            async fn accept_group(
                &self,
                tx: &mut Conn,
                m: &NewMessage,
            ) -> std::result::Result<crate::Outcome, sqlx::Error> {
                let Some(g) = m.conv.group_id() else {
                    return Err(sqlx::Error::Protocol("not a group message".into()));
                };
                if let Some(refused) = Self::check_sender(&mut *tx, g, m.from).await? {
                    // A retry of a message accepted before the refusal (say,
                    // before a mute) is still answered as its duplicate.
                    if let Some(found) = Self::find_cmid(&mut *tx, m.from, m.cmid).await? {
                        return Ok(Ok(found));
                    }
                    return Ok(Err(refused));
                }
                let seq = Self::next_seq(&mut *tx, m.conv.as_str()).await?;
                bind_content(
                    sqlx::query($q.insert_content.as_str()),
                    m,
                    seq,
                    self.offline_ttl_ms,
                )
                .execute(&mut *tx)
                .await?;
                Self::advance_read(&mut *tx, g, m.from, seq).await?;
                Ok(Ok(Accepted {
                    server_id: m.server_id,
                    conv: m.conv.clone(),
                    seq,
                    sent_at: m.sent_at,
                    duplicate: false,
                }))
            }
        }
    };
}

pub(crate) use sql_accept;
