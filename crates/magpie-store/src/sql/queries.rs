//! The SQL text of both dialects, written once.
//!
//! Statements are written with `?` placeholders (MySQL's); PostgreSQL's copy
//! numbers them `$1, $2, …` once per process. Only the upserts differ in
//! wording (`ON CONFLICT … DO UPDATE` against `ON DUPLICATE KEY UPDATE`), and
//! what needs `RETURNING` (which MySQL lacks) lives in `pg`/`mysql`.

use crate::sqlite::schema::{BOX_RECEIVED, BOX_SENT};
use std::sync::LazyLock;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    MySql,
}

/// Every statement the shared backend runs. `&'static str` because sqlx 0.9
/// only takes static (audited) SQL; the strings live in the two statics below.
pub(crate) struct Queries {
    pub user_by_name: String,
    pub user_by_id: String,
    pub put_refresh: String,
    pub get_refresh: String,
    pub del_refresh: String,
    pub put_settings: String,
    pub get_settings: String,
    pub lookup_cmid: String,
    pub lock_conv: String,
    pub insert_content: String,
    pub insert_box: String,
    pub upsert_summary: String,
    pub messages_after: String,
    pub messages_before: String,
    pub conversations: String,
    pub conversation: String,
    pub set_read: String,
    pub get_read: String,
    pub expired: String,
    pub delivered: String,
    pub read_upto: String,
    pub del_box: String,
    pub del_body: String,
}

pub(crate) static PG: LazyLock<Queries> = LazyLock::new(|| Queries::new(Dialect::Postgres));
pub(crate) static MYSQL: LazyLock<Queries> = LazyLock::new(|| Queries::new(Dialect::MySql));

/// The message columns `sql::message_of` decodes, from `im_msg_content c`.
const MESSAGE_COLUMNS: &str =
    "c.server_id, c.conv, c.seq, c.from_uid, c.to_uid, c.cmid, c.body, c.persistence, c.sent_at";

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

/// The victims of a retention delete, as `delete_victims` expects them.
const VICTIM_COLUMNS: &str = "server_id, conv, seq, from_uid, to_uid";

/// Exact unread: the owner's inbox rows above the read position, a range
/// scan of the box primary key (owner, conv, seq).
fn summaries(filter: &str) -> String {
    format!(
        "SELECT u.conv, u.peer_uid, u.last_seq, u.read_seq,
                (SELECT COUNT(*) FROM im_user_msg_box b
                 WHERE b.owner_uid = u.owner_uid AND b.conv = u.conv
                   AND b.seq > u.read_seq AND b.box_type = {BOX_RECEIVED})
         FROM user_conv u WHERE u.owner_uid = ? {filter} ORDER BY u.conv"
    )
}

impl Queries {
    fn new(d: Dialect) -> Queries {
        // `update` is a list of `col = <new value of col>` in the dialect's words.
        let upsert = |key: &str, cols: &[&str]| -> String {
            let set = |c: &&str| match d {
                Dialect::Postgres => format!("{c} = EXCLUDED.{c}"),
                Dialect::MySql => format!("{c} = VALUES({c})"),
            };
            let set = cols.iter().map(set).collect::<Vec<_>>().join(", ");
            match d {
                Dialect::Postgres => format!("ON CONFLICT ({key}) DO UPDATE SET {set}"),
                Dialect::MySql => format!("ON DUPLICATE KEY UPDATE {set}"),
            }
        };
        let q = Queries {
            user_by_name: "SELECT id, username, password_hash, created_at FROM users WHERE username = ?".into(),
            user_by_id: "SELECT id, username, password_hash, created_at FROM users WHERE id = ?".into(),
            put_refresh: "INSERT INTO refresh_tokens (token_hash, user_id, device, expires_at) VALUES (?, ?, ?, ?)".into(),
            get_refresh: "SELECT user_id, device, expires_at FROM refresh_tokens WHERE token_hash = ?".into(),
            del_refresh: "DELETE FROM refresh_tokens WHERE token_hash = ?".into(),
            put_settings: format!(
                "INSERT INTO settings (user_id, device, json) VALUES (?, ?, ?) {}",
                upsert("user_id, device", &["json"])
            ),
            // The device's own row sorts before the user default (`device = ''`).
            get_settings: "SELECT json FROM settings WHERE user_id = ? AND device IN (?, '')
                 ORDER BY device = '' LIMIT 1".into(),
            lookup_cmid: "SELECT server_id, conv, seq, sent_at FROM im_msg_content WHERE from_uid = ? AND cmid = ?".into(),
            // Creates or locks the conversation row without changing it.
            lock_conv: match d {
                Dialect::Postgres => "INSERT INTO conversations (conv, last_seq) VALUES (?, 0)
                     ON CONFLICT (conv) DO UPDATE SET last_seq = conversations.last_seq",
                Dialect::MySql => "INSERT INTO conversations (conv, last_seq) VALUES (?, 0)
                     ON DUPLICATE KEY UPDATE last_seq = last_seq",
            }
            .into(),
            insert_content: "INSERT INTO im_msg_content
                 (server_id, conv, seq, from_uid, to_uid, cmid, body, persistence, sent_at, expire_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)".into(),
            insert_box: "INSERT INTO im_user_msg_box (owner_uid, other_uid, conv, seq, server_id, box_type)
                 VALUES (?, ?, ?, ?, ?, ?)".into(),
            upsert_summary: format!(
                "INSERT INTO user_conv (owner_uid, conv, peer_uid, last_seq, read_seq) VALUES (?, ?, ?, ?, 0) {}",
                upsert("owner_uid, conv", &["last_seq", "peer_uid"])
            ),
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
        match d {
            Dialect::MySql => q,
            Dialect::Postgres => q.map(numbered),
        }
    }

    fn map(self, f: fn(&str) -> String) -> Queries {
        Queries {
            user_by_name: f(&self.user_by_name),
            user_by_id: f(&self.user_by_id),
            put_refresh: f(&self.put_refresh),
            get_refresh: f(&self.get_refresh),
            del_refresh: f(&self.del_refresh),
            put_settings: f(&self.put_settings),
            get_settings: f(&self.get_settings),
            lookup_cmid: f(&self.lookup_cmid),
            lock_conv: f(&self.lock_conv),
            insert_content: f(&self.insert_content),
            insert_box: f(&self.insert_box),
            upsert_summary: f(&self.upsert_summary),
            messages_after: f(&self.messages_after),
            messages_before: f(&self.messages_before),
            conversations: f(&self.conversations),
            conversation: f(&self.conversation),
            set_read: f(&self.set_read),
            get_read: f(&self.get_read),
            expired: f(&self.expired),
            delivered: f(&self.delivered),
            read_upto: f(&self.read_upto),
            del_box: f(&self.del_box),
            del_body: f(&self.del_body),
        }
    }
}

/// `?` → `$1, $2, …`. Safe because no statement above has a `?` inside a
/// string literal.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            numbered("a = ? AND b IN (?, '')"),
            "a = $1 AND b IN ($2, '')"
        );
        assert!(PG.set_read.contains("LEAST($1, last_seq)"));
        assert!(PG.put_settings.contains("ON CONFLICT (user_id, device)"));
        assert!(MYSQL.upsert_summary.contains("last_seq = VALUES(last_seq)"));
    }
}
