//! The SQL text of both dialects, written once.
//!
//! Statements are written with `?` placeholders (MySQL's); PostgreSQL's copy
//! numbers them `$1, $2, …` once per process. What the dialects word
//! differently (upserts, share locks, `RETURNING`) comes from `dialect`.

use super::dialect::Dialect;
use super::feed_queries::FeedQueries;
use super::group_queries::GroupQueries;
use crate::plan::{BOX_RECEIVED, BOX_SENT};
use std::sync::LazyLock;

/// Declares a statement table (one `String` per statement) and its `map`.
macro_rules! queries {
    ($table:ident: $($name:ident),* $(,)?) => {
        /// Every statement the shared backend runs. `&'static str` because
        /// sqlx 0.9 only takes static (audited) SQL; the strings live in the
        /// two statics below.
        pub(crate) struct $table {
            $(pub $name: String,)*
        }

        impl $table {
            fn map(self, f: impl Fn(&str) -> String) -> $table {
                $table { $($name: f(&self.$name),)* }
            }
        }
    };
}

pub(crate) use queries;

queries! { Queries:
    user_by_name, user_by_id, insert_user, put_refresh, get_refresh, mark_refresh, del_refresh,
    revoke_family, purge_family, put_settings,
    get_settings, device_settings, lookup_cmid, messages_after, messages_before, conversations, conversation,
    set_read, get_read, expired, delivered, read_upto, del_box, del_body, scan_searchable,
    revise_edit, revise_recall, mute_direct, mute_group, put_profile, expired_mentions,
}

/// Every statement of one dialect, built once per process.
pub(crate) struct Statements {
    pub q: Queries,
    pub g: GroupQueries,
    pub f: FeedQueries,
}

static PG: LazyLock<Statements> = LazyLock::new(|| Statements::new(Dialect::Postgres));
static MYSQL: LazyLock<Statements> = LazyLock::new(|| Statements::new(Dialect::MySql));

impl Statements {
    fn new(d: Dialect) -> Statements {
        Statements {
            q: Queries::new(d),
            g: GroupQueries::new(d),
            f: FeedQueries::new(d),
        }
    }

    pub(crate) fn of(d: Dialect) -> &'static Statements {
        match d {
            Dialect::Postgres => &PG,
            Dialect::MySql => &MYSQL,
        }
    }
}

/// The message columns `sql::message_of` decodes, from `im_msg_content c`.
pub(super) const MESSAGE_COLUMNS: &str = "c.server_id, c.conv, c.seq, c.from_uid, c.to_uid, c.cmid, c.body, c.persistence, c.sent_at, c.searchable, c.meta, c.revised";

/// The body a box row points at. The content table is partitioned by sender,
/// so the join names the sender (the owner of an outbox row, the other party
/// of an inbox row) and each lookup is a primary-key seek in one partition.
fn box_join() -> String {
    format!(
        "im_user_msg_box b JOIN im_msg_content c
           ON c.from_uid = CASE WHEN b.box_type = {BOX_SENT} THEN b.owner_uid ELSE b.other_uid END
          AND c.server_id = b.server_id"
    )
}

/// The rows a retention delete removes, as `delete_doomed` expects them.
const VICTIM_COLUMNS: &str = "server_id, conv, seq, from_uid, to_uid";

/// Exact unread: the owner's inbox rows above the read position, a range
/// scan of the box primary key (owner, conv, seq).
fn summaries(filter: &str) -> String {
    format!(
        "SELECT u.conv, u.peer_uid, u.last_seq, u.read_seq,
                (SELECT COUNT(*) FROM im_user_msg_box b
                 WHERE b.owner_uid = u.owner_uid AND b.conv = u.conv
                   AND b.seq > u.read_seq AND b.box_type = {BOX_RECEIVED}),
                u.notify_muted
         FROM user_conv u WHERE u.owner_uid = ? {filter} ORDER BY u.conv"
    )
}

impl Queries {
    fn new(d: Dialect) -> Queries {
        // PostgreSQL returns a generated id with the insert; MySQL reports
        // it with the result (`db::Exec::insert_id`).
        let returning = match d {
            Dialect::Postgres => " RETURNING id",
            Dialect::MySql => "",
        };
        let q = Queries {
            user_by_name: "SELECT id, username, password_hash, created_at FROM users WHERE username = ?".into(),
            user_by_id: "SELECT id, username, password_hash, created_at FROM users WHERE id = ?".into(),
            insert_user: format!(
                "INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?){returning}"
            ),
            put_refresh: "INSERT INTO refresh_tokens (token_hash, family, user_id, device, expires_at)
                 VALUES (?, ?, ?, ?, ?)"
                .into(),
            get_refresh: "SELECT user_id, device, expires_at FROM refresh_tokens WHERE token_hash = ?"
                .into(),
            // Only one caller's UPDATE changes the row: that use is the fresh one.
            mark_refresh: "UPDATE refresh_tokens SET used = TRUE WHERE token_hash = ? AND used = FALSE"
                .into(),
            del_refresh: "DELETE FROM refresh_tokens WHERE token_hash = ?".into(),
            revoke_family: "DELETE FROM refresh_tokens WHERE family = ? AND family <> ''".into(),
            // Used tokens are kept to recognise a replay until they expire.
            purge_family: "DELETE FROM refresh_tokens
                 WHERE family = ? AND family <> '' AND used = TRUE AND expires_at < ?"
                .into(),
            put_settings: format!(
                "INSERT INTO settings (user_id, device, json) VALUES (?, ?, ?) {}",
                d.upsert("user_id, device", &["json"])
            ),
            // The device's own row sorts before the user default (`device = ''`).
            get_settings: "SELECT json FROM settings WHERE user_id = ? AND device IN (?, '')
                 ORDER BY device = '' LIMIT 1".into(),
            device_settings: "SELECT device, json FROM settings WHERE user_id = ? AND device <> ''
                 ORDER BY device".into(),
            lookup_cmid: "SELECT server_id, conv, seq, sent_at FROM im_msg_content WHERE from_uid = ? AND cmid = ?".into(),
            messages_after: format!(
                "SELECT {MESSAGE_COLUMNS} FROM {}
                 WHERE b.owner_uid = ? AND b.conv = ? AND b.seq > ? ORDER BY b.seq ASC LIMIT ?",
                box_join()
            ),
            messages_before: format!(
                "SELECT {MESSAGE_COLUMNS} FROM {}
                 WHERE b.owner_uid = ? AND b.conv = ? AND b.seq < ? ORDER BY b.seq DESC LIMIT ?",
                box_join()
            ),
            // A walk of the (conv, seq) index; the bound is written out
            // rather than as a row comparison so both engines range-scan it.
            scan_searchable: format!(
                "SELECT {MESSAGE_COLUMNS} FROM im_msg_content c
                 WHERE (c.conv > ? OR (c.conv = ? AND c.seq > ?)) AND c.searchable = 1
                 ORDER BY c.conv, c.seq LIMIT ?"
            ),
            revise_edit: "UPDATE im_msg_content SET body = ?, revised = ?
                 WHERE conv = ? AND seq = ? AND revised >= 0"
                .into(),
            revise_recall: "UPDATE im_msg_content SET body = '', revised = -1, searchable = 0
                 WHERE conv = ? AND seq = ?"
                .into(),
            put_profile: format!(
                "INSERT INTO user_profile (user_id, display_name, avatar_url, updated_at)
                 VALUES (?, ?, ?, ?) {}",
                d.upsert("user_id", &["display_name", "avatar_url", "updated_at"])
            ),
            expired_mentions: "DELETE FROM im_mention WHERE expire_at IS NOT NULL AND expire_at <= ?"
                .into(),
            mute_direct: "UPDATE user_conv SET notify_muted = ? WHERE owner_uid = ? AND conv = ?"
                .into(),
            mute_group: "UPDATE im_group_member SET notify_muted = ? WHERE group_id = ? AND user_id = ?"
                .into(),
            conversations: summaries(""),
            conversation: summaries("AND u.conv = ?"),
            set_read: "UPDATE user_conv SET read_seq = GREATEST(read_seq, LEAST(?, last_seq))
                 WHERE owner_uid = ? AND conv = ?".into(),
            get_read: "SELECT read_seq FROM user_conv WHERE owner_uid = ? AND conv = ?".into(),
            expired: format!(
                "SELECT {VICTIM_COLUMNS} FROM im_msg_content
                 WHERE expire_at IS NOT NULL AND expire_at <= ? ORDER BY expire_at LIMIT ?"
            ),
            delivered: format!(
                "SELECT {VICTIM_COLUMNS} FROM im_msg_content
                 WHERE conv = ? AND seq = ? AND to_uid = ? AND persistence = 'none'"
            ),
            read_upto: format!(
                "SELECT {VICTIM_COLUMNS} FROM im_msg_content
                 WHERE conv = ? AND to_uid = ? AND seq <= ? AND persistence IN ('none', 'offline') ORDER BY seq"
            ),
            del_box: "DELETE FROM im_user_msg_box WHERE owner_uid IN (?, ?) AND conv = ? AND seq = ?".into(),
            del_body: "DELETE FROM im_msg_content WHERE from_uid = ? AND server_id = ?".into(),
        };
        q.map(|s| d.finish(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            Dialect::Postgres.finish("a = ? AND b IN (?, '')"),
            "a = $1 AND b IN ($2, '')"
        );
        let (pg, my) = (&PG.q, &MYSQL.q);
        assert!(pg.insert_user.ends_with("($1, $2, $3) RETURNING id"));
        assert!(my.insert_user.ends_with("(?, ?, ?)"));
        assert!(pg.set_read.contains("LEAST($1, last_seq)"));
        assert!(pg.put_settings.contains("ON CONFLICT (user_id, device)"));
    }
}
