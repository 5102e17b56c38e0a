//! The SQL text of follow feeds in both dialects, written once (see
//! `queries` for the conventions): half-edges, counts, blocks, outboxes.
//! The statements over a list (`outboxes`, `posts`) depend on its length
//! and are built per call (`in_list`).

use super::dialect::Dialect;
use super::queries::queries;

queries! { FeedQueries:
    out_present, out_insert, out_delete, out_page, out_count,
    in_present, in_insert, in_delete, in_page, in_count,
    counts, block_present, block_insert, block_delete, block_page,
    post_by_cmid, post_insert, post_delete,
}

/// The post columns `sql::feeds` decodes.
pub(super) const POST_COLUMNS: &str = "id, author, cmid, body, created_at, deleted";

/// `?, ?, …` for `n` values.
pub(super) fn in_list(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        s.push_str(if i == 0 { "?" } else { ", ?" });
    }
    s
}

/// One half-edge table's statements: `table` keyed by (`user`, `other`),
/// its count column `count` in `follow_counts`.
fn edge(d: Dialect, table: &str, user: &str, other: &str, count: &str) -> [String; 5] {
    [
        format!("SELECT 1 FROM {table} WHERE {user} = ? AND {other} = ?"),
        format!("INSERT INTO {table} ({user}, {other}, created_at) VALUES (?, ?, ?)"),
        format!("DELETE FROM {table} WHERE {user} = ? AND {other} = ?"),
        format!(
            "SELECT {other} FROM {table} WHERE {user} = ? AND {other} > ? ORDER BY {other} LIMIT ?"
        ),
        format!(
            "INSERT INTO follow_counts (user_id, {count}) VALUES (?, ?) {}",
            d.upsert_add("follow_counts", "user_id", count)
        ),
    ]
}

/// One half-edge table's statements (`FeedQueries::following`, `followers`).
pub(super) struct EdgeSql<'a> {
    pub present: &'a str,
    pub insert: &'a str,
    pub delete: &'a str,
    pub page: &'a str,
    pub count: &'a str,
}

impl FeedQueries {
    /// The follower's side: `follow_out`, the following count.
    pub(super) fn following(&self) -> EdgeSql<'_> {
        EdgeSql {
            present: &self.out_present,
            insert: &self.out_insert,
            delete: &self.out_delete,
            page: &self.out_page,
            count: &self.out_count,
        }
    }

    /// The followee's side: `follow_in`, the followers count.
    pub(super) fn followers(&self) -> EdgeSql<'_> {
        EdgeSql {
            present: &self.in_present,
            insert: &self.in_insert,
            delete: &self.in_delete,
            page: &self.in_page,
            count: &self.in_count,
        }
    }

    pub(super) fn new(d: Dialect) -> FeedQueries {
        let [out_present, out_insert, out_delete, out_page, out_count] =
            edge(d, "follow_out", "follower", "followee", "following");
        let [in_present, in_insert, in_delete, in_page, in_count] =
            edge(d, "follow_in", "followee", "follower", "followers");
        let q = FeedQueries {
            out_present,
            out_insert,
            out_delete,
            out_page,
            out_count,
            in_present,
            in_insert,
            in_delete,
            in_page,
            in_count,
            counts: "SELECT followers, following FROM follow_counts WHERE user_id = ?".into(),
            block_present: "SELECT 1 FROM blocks WHERE blocker = ? AND blocked = ?".into(),
            block_insert: "INSERT INTO blocks (blocker, blocked, created_at) VALUES (?, ?, ?)"
                .into(),
            block_delete: "DELETE FROM blocks WHERE blocker = ? AND blocked = ?".into(),
            block_page: "SELECT blocked FROM blocks WHERE blocker = ? AND blocked > ?
                 ORDER BY blocked LIMIT ?"
                .into(),
            post_by_cmid: format!("SELECT {POST_COLUMNS} FROM posts WHERE author = ? AND cmid = ?"),
            post_insert: "INSERT INTO posts (id, author, cmid, body, created_at)
                 VALUES (?, ?, ?, ?, ?)"
                .into(),
            post_delete: "UPDATE posts SET deleted = TRUE, body = ''
                 WHERE id = ? AND author = ? AND deleted = FALSE"
                .into(),
        };
        q.map(|s| d.finish(s))
    }
}
