//! The feed domain of `SqliteStore` (docs/feeds.md): follow half-edges and
//! their counts, blocks and outboxes. Writes are jobs on the writer thread
//! (each one transaction with the other queued jobs, in its own savepoint);
//! reads go to the pool.

use super::SqliteStore;
use super::schema::bad;
use crate::backend::FeedStore;
use crate::error::{Result, StoreError};
use crate::store::{FollowCounts, PostOutcome};
use async_trait::async_trait;
use magpie_core::{ClientMsgId, NewPost, Post, PostId, UserId, newest_first};
use rusqlite::{Connection, OptionalExtension, Row, params};

const POST_COLUMNS: &str = "id, author, cmid, body, created_at, deleted";

fn post_from_row(row: &Row<'_>) -> rusqlite::Result<Post> {
    let cmid: Vec<u8> = row.get(2)?;
    Ok(Post {
        id: PostId(row.get(0)?),
        author: UserId(row.get(1)?),
        cmid: ClientMsgId::from_bytes(&cmid).map_err(|e| bad(2, e.to_string()))?,
        body: row.get(3)?,
        created_at: row.get(4)?,
        deleted: row.get(5)?,
    })
}

/// Whether `blocker` blocks `blocked`.
fn blocks(c: &Connection, blocker: UserId, blocked: UserId) -> Result<bool> {
    let sql = "SELECT 1 FROM blocks WHERE blocker = ?1 AND blocked = ?2";
    let row = c
        .prepare_cached(sql)?
        .query_row(params![blocker.0, blocked.0], |_| Ok(()));
    Ok(row.optional()?.is_some())
}

/// Inserts one half-edge into `table` (`follow_out`: keyed by the follower,
/// `follow_in`: by the followee) unless `user` blocks `other`, and moves
/// `user`'s `count` when it is new.
fn add_edge(c: &Connection, table: Edge, user: UserId, other: UserId, at: i64) -> Result<bool> {
    if blocks(c, user, other)? {
        return Err(StoreError::Forbidden(format!(
            "user {user} blocks user {other}"
        )));
    }
    let (insert, count) = table.sql_add();
    let new = c
        .prepare_cached(insert)?
        .execute(params![user.0, other.0, at])?
        == 1;
    if new {
        c.prepare_cached(count)?.execute(params![user.0, 1])?;
    }
    Ok(new)
}

fn remove_edge(c: &Connection, table: Edge, user: UserId, other: UserId) -> Result<bool> {
    let (delete, count) = table.sql_remove();
    let gone = c
        .prepare_cached(delete)?
        .execute(params![user.0, other.0])?
        == 1;
    if gone {
        c.prepare_cached(count)?.execute(params![user.0, -1])?;
    }
    Ok(gone)
}

/// The two half-edge tables, each keyed by the user whose side it is.
#[derive(Clone, Copy)]
enum Edge {
    Out,
    In,
}

impl Edge {
    fn sql_add(self) -> (&'static str, &'static str) {
        match self {
            Edge::Out => (
                "INSERT OR IGNORE INTO follow_out (follower, followee, created_at) VALUES (?1, ?2, ?3)",
                "INSERT INTO follow_counts (user_id, following) VALUES (?1, ?2)
                 ON CONFLICT (user_id) DO UPDATE SET following = following + excluded.following",
            ),
            Edge::In => (
                "INSERT OR IGNORE INTO follow_in (followee, follower, created_at) VALUES (?1, ?2, ?3)",
                "INSERT INTO follow_counts (user_id, followers) VALUES (?1, ?2)
                 ON CONFLICT (user_id) DO UPDATE SET followers = followers + excluded.followers",
            ),
        }
    }

    fn sql_remove(self) -> (&'static str, &'static str) {
        match self {
            Edge::Out => (
                "DELETE FROM follow_out WHERE follower = ?1 AND followee = ?2",
                "UPDATE follow_counts SET following = following + ?2 WHERE user_id = ?1",
            ),
            Edge::In => (
                "DELETE FROM follow_in WHERE followee = ?1 AND follower = ?2",
                "UPDATE follow_counts SET followers = followers + ?2 WHERE user_id = ?1",
            ),
        }
    }
}

/// Ids of a user's rows in a two-column key, above `after`.
fn page(
    c: &Connection,
    sql: &str,
    user: UserId,
    after: UserId,
    limit: usize,
) -> Result<Vec<UserId>> {
    let mut st = c.prepare_cached(sql)?;
    let rows = st.query_map(params![user.0, after.0, limit as i64], |r| r.get(0))?;
    Ok(rows
        .map(|r| r.map(UserId))
        .collect::<rusqlite::Result<_>>()?)
}

fn create_post(c: &Connection, p: &NewPost) -> Result<PostOutcome> {
    let cmid = &p.cmid.as_bytes()[..];
    let find = format!("SELECT {POST_COLUMNS} FROM posts WHERE author = ?1 AND cmid = ?2");
    let found = c
        .prepare_cached(&find)?
        .query_row(params![p.author.0, cmid], post_from_row)
        .optional()?;
    if let Some(post) = found {
        return Ok(PostOutcome {
            post,
            duplicate: true,
        });
    }
    c.prepare_cached(
        "INSERT INTO posts (id, author, cmid, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![p.id.0, p.author.0, cmid, p.body, p.created_at])?;
    Ok(PostOutcome {
        post: p.stored(),
        duplicate: false,
    })
}

/// Newest first below `before`, one index range per author merged by the
/// engine (each author's range is read newest first and stops at `limit`).
fn outboxes(
    c: &Connection,
    authors: &[UserId],
    before: Option<PostId>,
    limit: usize,
) -> Result<Vec<Post>> {
    let before = before.map_or(i64::MAX, |p| p.0);
    let mut out = Vec::new();
    let sql = format!(
        "SELECT {POST_COLUMNS} FROM posts
         WHERE author = ?1 AND id < ?2 AND deleted = 0 ORDER BY id DESC LIMIT ?3"
    );
    let mut st = c.prepare_cached(&sql)?;
    for a in authors {
        let rows = st.query_map(params![a.0, before, limit as i64], post_from_row)?;
        for r in rows {
            out.push(r?);
        }
    }
    newest_first(&mut out);
    out.truncate(limit);
    Ok(out)
}

fn posts(c: &Connection, keys: &[(UserId, PostId)]) -> Result<Vec<Post>> {
    let sql =
        format!("SELECT {POST_COLUMNS} FROM posts WHERE id = ?1 AND author = ?2 AND deleted = 0");
    let mut st = c.prepare_cached(&sql)?;
    let mut out = Vec::with_capacity(keys.len());
    for (author, id) in keys {
        if let Some(p) = st
            .query_row(params![id.0, author.0], post_from_row)
            .optional()?
        {
            out.push(p);
        }
    }
    newest_first(&mut out);
    out.dedup_by_key(|p| p.id);
    Ok(out)
}

#[async_trait]
impl FeedStore for SqliteStore {
    async fn add_following(&self, follower: UserId, followee: UserId, at: i64) -> Result<bool> {
        self.writer
            .exec(move |c| add_edge(c, Edge::Out, follower, followee, at))
            .await
    }

    async fn add_follower(&self, followee: UserId, follower: UserId, at: i64) -> Result<bool> {
        self.writer
            .exec(move |c| add_edge(c, Edge::In, followee, follower, at))
            .await
    }

    async fn remove_following(&self, follower: UserId, followee: UserId) -> Result<bool> {
        self.writer
            .exec(move |c| remove_edge(c, Edge::Out, follower, followee))
            .await
    }

    async fn remove_follower(&self, followee: UserId, follower: UserId) -> Result<bool> {
        self.writer
            .exec(move |c| remove_edge(c, Edge::In, followee, follower))
            .await
    }

    async fn following(&self, user: UserId, after: UserId, limit: usize) -> Result<Vec<UserId>> {
        let sql = "SELECT followee FROM follow_out WHERE follower = ?1 AND followee > ?2
                   ORDER BY followee LIMIT ?3";
        self.read(move |c| page(c, sql, user, after, limit)).await
    }

    async fn followers(&self, user: UserId, after: UserId, limit: usize) -> Result<Vec<UserId>> {
        let sql = "SELECT follower FROM follow_in WHERE followee = ?1 AND follower > ?2
                   ORDER BY follower LIMIT ?3";
        self.read(move |c| page(c, sql, user, after, limit)).await
    }

    async fn follow_counts(&self, user: UserId) -> Result<FollowCounts> {
        self.read(move |c| {
            let sql = "SELECT followers, following FROM follow_counts WHERE user_id = ?1";
            let row = c.prepare_cached(sql)?.query_row(params![user.0], |r| {
                Ok(FollowCounts {
                    followers: r.get(0)?,
                    following: r.get(1)?,
                })
            });
            Ok(row.optional()?.unwrap_or_default())
        })
        .await
    }

    async fn set_block(&self, blocker: UserId, blocked: UserId, on: bool, at: i64) -> Result<bool> {
        self.writer
            .exec(move |c| {
                let n = if on {
                    let sql = "INSERT OR IGNORE INTO blocks (blocker, blocked, created_at)
                               VALUES (?1, ?2, ?3)";
                    c.prepare_cached(sql)?
                        .execute(params![blocker.0, blocked.0, at])?
                } else {
                    let sql = "DELETE FROM blocks WHERE blocker = ?1 AND blocked = ?2";
                    c.prepare_cached(sql)?
                        .execute(params![blocker.0, blocked.0])?
                };
                Ok(n == 1)
            })
            .await
    }

    async fn blocked(&self, blocker: UserId, after: UserId, limit: usize) -> Result<Vec<UserId>> {
        let sql = "SELECT blocked FROM blocks WHERE blocker = ?1 AND blocked > ?2
                   ORDER BY blocked LIMIT ?3";
        self.read(move |c| page(c, sql, blocker, after, limit))
            .await
    }

    async fn create_post(&self, post: NewPost) -> Result<PostOutcome> {
        self.writer.exec(move |c| create_post(c, &post)).await
    }

    async fn delete_post(&self, author: UserId, id: PostId) -> Result<bool> {
        self.writer
            .exec(move |c| {
                let sql = "UPDATE posts SET deleted = 1, body = ''
                           WHERE id = ?1 AND author = ?2 AND deleted = 0";
                Ok(c.prepare_cached(sql)?.execute(params![id.0, author.0])? == 1)
            })
            .await
    }

    async fn outboxes(
        &self,
        authors: &[UserId],
        before: Option<PostId>,
        limit: usize,
    ) -> Result<Vec<Post>> {
        let authors = authors.to_vec();
        self.read(move |c| outboxes(c, &authors, before, limit))
            .await
    }

    async fn posts(&self, keys: &[(UserId, PostId)]) -> Result<Vec<Post>> {
        let keys = keys.to_vec();
        self.read(move |c| posts(c, &keys)).await
    }
}
