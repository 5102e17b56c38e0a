//! The feed domain on SQL (docs/feeds.md): each half-edge, block and post
//! is one transaction on the user's own database. Inserts that must happen
//! once look first and insert second; two racing inserts of one key meet
//! the primary or unique key, and the loser's retry (`TransientAndUnique`)
//! finds the winner's row, so counts move once per edge.

use super::db::{Arg, Exec, Sqlx, args};
use super::feed_queries::{EdgeSql, POST_COLUMNS, in_list};
use super::store::SqlStore;
use super::{Retry, bad, limit_param, retrying, store_err};
use crate::backend::FeedStore;
use crate::error::{Result, StoreError};
use crate::store::{FollowCounts, PostOutcome};
use async_trait::async_trait;
use magpie_core::{ClientMsgId, NewPost, Post, PostId, UserId, newest_first};

/// Values per statement of the list reads (well below every engine's limit
/// on bound parameters).
const CHUNK: usize = 500;

type PostRow = (i64, i64, String, String, i64, bool);

fn post_of((id, author, cmid, body, created_at, deleted): PostRow) -> Sqlx<Post> {
    Ok(Post {
        id: PostId(id),
        author: UserId(author),
        cmid: ClientMsgId::try_from(cmid).map_err(|e| bad("post cmid", e))?,
        body,
        created_at,
        deleted,
    })
}

/// Which half of a follow: the follower's side (`follow_out`) or the
/// followee's (`follow_in`); both keyed by the user whose side it is.
#[derive(Clone, Copy)]
enum Side {
    Following,
    Follower,
}

impl SqlStore {
    fn side(&self, side: Side) -> EdgeSql<'static> {
        match side {
            Side::Following => self.f.following(),
            Side::Follower => self.f.followers(),
        }
    }

    /// Adds `user`'s half-edge to `other` unless `user` blocks `other`:
    /// `None` when blocked, else whether it is new.
    async fn add_edge(&self, side: Side, user: UserId, other: UserId, at: i64) -> Result<bool> {
        let e = self.side(side);
        let out = retrying("add_follow", Retry::TransientAndUnique, || async {
            let mut tx = self.pool.begin().await?;
            let mut x = tx.exec();
            let a = args![user.0, other.0];
            if x.optional::<(i32,)>(self.f.block_present.as_str(), a)
                .await?
                .is_some()
            {
                return Ok(None);
            }
            let a = args![user.0, other.0];
            if x.optional::<(i32,)>(e.present, a).await?.is_some() {
                return Ok(Some(false));
            }
            x.execute(e.insert, args![user.0, other.0, at]).await?;
            x.execute(e.count, args![user.0, 1i64]).await?;
            tx.commit().await?;
            Ok(Some(true))
        })
        .await?;
        out.ok_or_else(|| StoreError::Forbidden(format!("user {user} blocks user {other}")))
    }

    async fn remove_edge(&self, side: Side, user: UserId, other: UserId) -> Result<bool> {
        let e = self.side(side);
        retrying("remove_follow", Retry::Transient, || async {
            let mut tx = self.pool.begin().await?;
            let mut x = tx.exec();
            let gone = x.execute(e.delete, args![user.0, other.0]).await? == 1;
            if gone {
                x.execute(e.count, args![user.0, -1i64]).await?;
            }
            tx.commit().await?;
            Ok(gone)
        })
        .await
    }

    async fn ids(
        &self,
        sql: &'static str,
        user: UserId,
        after: UserId,
        n: usize,
    ) -> Result<Vec<UserId>> {
        let mut c = self.pool.acquire().await.map_err(store_err)?;
        let a = args![user.0, after.0, limit_param(n)];
        let rows: Vec<(i64,)> = c.exec().all(sql, a).await.map_err(store_err)?;
        Ok(rows.into_iter().map(|(u,)| UserId(u)).collect())
    }

    /// Runs `SELECT {POST_COLUMNS} FROM posts WHERE {filter}` built per list.
    async fn post_rows(x: &mut Exec<'_>, sql: String, a: Vec<Arg<'_>>) -> Sqlx<Vec<Post>> {
        let rows: Vec<PostRow> = x.all(sql, a).await?;
        rows.into_iter().map(post_of).collect()
    }
}

#[async_trait]
impl FeedStore for SqlStore {
    async fn add_following(&self, follower: UserId, followee: UserId, at: i64) -> Result<bool> {
        self.add_edge(Side::Following, follower, followee, at).await
    }

    async fn add_follower(&self, followee: UserId, follower: UserId, at: i64) -> Result<bool> {
        self.add_edge(Side::Follower, followee, follower, at).await
    }

    async fn remove_following(&self, follower: UserId, followee: UserId) -> Result<bool> {
        self.remove_edge(Side::Following, follower, followee).await
    }

    async fn remove_follower(&self, followee: UserId, follower: UserId) -> Result<bool> {
        self.remove_edge(Side::Follower, followee, follower).await
    }

    async fn following(&self, user: UserId, after: UserId, limit: usize) -> Result<Vec<UserId>> {
        self.ids(self.side(Side::Following).page, user, after, limit)
            .await
    }

    async fn followers(&self, user: UserId, after: UserId, limit: usize) -> Result<Vec<UserId>> {
        self.ids(self.side(Side::Follower).page, user, after, limit)
            .await
    }

    async fn follow_counts(&self, user: UserId) -> Result<FollowCounts> {
        let mut c = self.pool.acquire().await.map_err(store_err)?;
        let row: Option<(i64, i64)> = c
            .exec()
            .optional(self.f.counts.as_str(), args![user.0])
            .await
            .map_err(store_err)?;
        Ok(
            row.map_or_else(FollowCounts::default, |(followers, following)| {
                FollowCounts {
                    followers,
                    following,
                }
            }),
        )
    }

    async fn set_block(&self, blocker: UserId, blocked: UserId, on: bool, at: i64) -> Result<bool> {
        retrying("set_block", Retry::TransientAndUnique, || async {
            let mut c = self.pool.acquire().await?;
            let mut x = c.exec();
            if !on {
                let a = args![blocker.0, blocked.0];
                return Ok(x.execute(self.f.block_delete.as_str(), a).await? == 1);
            }
            let a = args![blocker.0, blocked.0];
            if x.optional::<(i32,)>(self.f.block_present.as_str(), a)
                .await?
                .is_some()
            {
                return Ok(false);
            }
            let a = args![blocker.0, blocked.0, at];
            x.execute(self.f.block_insert.as_str(), a).await?;
            Ok(true)
        })
        .await
    }

    async fn blocked(&self, blocker: UserId, after: UserId, limit: usize) -> Result<Vec<UserId>> {
        self.ids(self.f.block_page.as_str(), blocker, after, limit)
            .await
    }

    async fn create_post(&self, p: NewPost) -> Result<PostOutcome> {
        let cmid = p.cmid.to_string();
        retrying("create_post", Retry::TransientAndUnique, || async {
            let mut c = self.pool.acquire().await?;
            let mut x = c.exec();
            let a = args![p.author.0, cmid.as_str()];
            let found: Option<PostRow> = x.optional(self.f.post_by_cmid.as_str(), a).await?;
            if let Some(row) = found {
                let post = post_of(row)?;
                return Ok(PostOutcome {
                    post,
                    duplicate: true,
                });
            }
            let a = args![
                p.id.0,
                p.author.0,
                cmid.as_str(),
                p.body.as_str(),
                p.created_at
            ];
            x.execute(self.f.post_insert.as_str(), a).await?;
            Ok(PostOutcome {
                post: p.stored(),
                duplicate: false,
            })
        })
        .await
    }

    async fn delete_post(&self, author: UserId, id: PostId) -> Result<bool> {
        retrying("delete_post", Retry::Transient, || async {
            let mut c = self.pool.acquire().await?;
            let a = args![id.0, author.0];
            Ok(c.exec().execute(self.f.post_delete.as_str(), a).await? == 1)
        })
        .await
    }

    async fn outboxes(
        &self,
        authors: &[UserId],
        before: Option<PostId>,
        limit: usize,
    ) -> Result<Vec<Post>> {
        let before = before.map_or(i64::MAX, |p| p.0);
        let d = self.pool.dialect();
        let mut c = self.pool.acquire().await.map_err(store_err)?;
        let mut x = c.exec();
        let mut out = Vec::new();
        for chunk in authors.chunks(CHUNK) {
            let sql = d.finish(&format!(
                "SELECT {POST_COLUMNS} FROM posts WHERE author IN ({}) AND id < ?
                   AND deleted = FALSE ORDER BY id DESC LIMIT ?",
                in_list(chunk.len())
            ));
            let mut a: Vec<Arg<'_>> = chunk.iter().map(|u| Arg::from(u.0)).collect();
            a.extend(args![before, limit_param(limit)]);
            out.extend(Self::post_rows(&mut x, sql, a).await.map_err(store_err)?);
        }
        newest_first(&mut out);
        out.truncate(limit);
        Ok(out)
    }

    async fn posts(&self, keys: &[(UserId, PostId)]) -> Result<Vec<Post>> {
        let d = self.pool.dialect();
        let mut c = self.pool.acquire().await.map_err(store_err)?;
        let mut x = c.exec();
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let sql = d.finish(&format!(
                "SELECT {POST_COLUMNS} FROM posts WHERE id IN ({}) AND deleted = FALSE",
                in_list(chunk.len())
            ));
            let a = chunk.iter().map(|(_, id)| Arg::from(id.0)).collect();
            let found = Self::post_rows(&mut x, sql, a).await.map_err(store_err)?;
            // The id names the post; the author must match the key's.
            out.extend(found.into_iter().filter(|p| chunk.contains(&p.key())));
        }
        newest_first(&mut out);
        out.dedup_by_key(|p| p.id);
        Ok(out)
    }
}
