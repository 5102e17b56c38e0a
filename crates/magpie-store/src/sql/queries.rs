//! The SQL text of both dialects, written once.
//!
//! Statements are written with `?` placeholders (MySQL's); PostgreSQL's copy
//! numbers them `$1, $2, …` once per process. Only the upserts differ in
//! wording (`ON CONFLICT … DO UPDATE` against `ON DUPLICATE KEY UPDATE`), and
//! what needs `RETURNING` (which MySQL lacks) lives in `pg`/`mysql`.

use crate::sql::{BOX_RECEIVED, BOX_SENT};
use std::sync::LazyLock;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    MySql,
}

/// Declares `Queries` (one `String` per statement) and `map` from one list.
macro_rules! queries {
    ($($name:ident),* $(,)?) => {
        /// Every statement the shared backend runs. `&'static str` because
        /// sqlx 0.9 only takes static (audited) SQL; the strings live in the
        /// two statics below.
        pub(crate) struct Queries {
            $(pub $name: String,)*
        }

        impl Queries {
            fn map(self, f: fn(&str) -> String) -> Queries {
                Queries { $($name: f(&self.$name),)* }
            }
        }
    };
}

queries! {
    user_by_name, user_by_id, put_refresh, get_refresh, del_refresh, put_settings, get_settings,
    lookup_cmid, lock_conv, insert_content, insert_box, upsert_summary, messages_after,
    messages_before, conversations, conversation, set_read, get_read, expired, delivered,
    read_upto, del_box, del_body, last_seq,
    // groups (see `sql::groups`)
    group_lock, group_share, group_count, group_rename, group_dissolve, group_info,
    member_insert, member_lock, member_delete, member_set, member_advance, member_read,
    member_info, member_page, user_groups, read_counts, read_page, group_after, group_before,
    group_summaries, group_summary,
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

/// The group columns `sql::group_reads::group_of` decodes; the last
/// sequence comes from the group conversation's row (bound as `g:{id}`).
const GROUP_COLUMNS: &str =
    "g.id, g.name, g.owner_uid, g.created_at, g.members, g.history, g.dissolved,
     COALESCE((SELECT v.last_seq FROM conversations v WHERE v.conv = ?), 0)";

/// The member columns `sql::group_reads::member_of` decodes.
const MEMBER_COLUMNS: &str = "user_id, role, muted, joined_seq, read_seq, joined_at";

/// A member's group messages: none for a non-member (the join finds no
/// member row), else those above the join position. The bodies are found by
/// the (conv, seq) index across the sender partitions.
fn group_messages(window: &str, order: &str) -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM im_group_member m
           JOIN im_msg_content c ON c.conv = ? AND {window}
         WHERE m.group_id = ? AND m.user_id = ? ORDER BY c.seq {order} LIMIT ?"
    )
}

/// A member's group positions and each group's last sequence (the
/// group conversation's row, a primary-key seek per membership).
fn group_summaries(filter: &str) -> String {
    format!(
        "SELECT m.group_id, m.read_seq, m.joined_seq,
                COALESCE((SELECT v.last_seq FROM conversations v
                          WHERE v.conv = CONCAT('g:', m.group_id)), 0)
         FROM im_group_member m WHERE m.user_id = ? {filter} ORDER BY m.group_id"
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
            last_seq: "SELECT last_seq FROM conversations WHERE conv = ?".into(),
            // Membership changes lock the group row first, then member rows;
            // accept takes the same order after its conversation row.
            group_lock: "SELECT history FROM im_group WHERE id = ? FOR UPDATE".into(),
            group_share: match d {
                Dialect::Postgres => "SELECT dissolved FROM im_group WHERE id = ? FOR SHARE",
                Dialect::MySql => "SELECT dissolved FROM im_group WHERE id = ? LOCK IN SHARE MODE",
            }
            .into(),
            group_count: "UPDATE im_group SET members = members + ? WHERE id = ?".into(),
            group_rename: "UPDATE im_group SET name = ? WHERE id = ?".into(),
            group_dissolve: "UPDATE im_group SET dissolved = TRUE WHERE id = ?".into(),
            group_info: format!("SELECT {GROUP_COLUMNS} FROM im_group g WHERE g.id = ?"),
            // Adds nothing (0 rows) for a member already there.
            member_insert: match d {
                Dialect::Postgres => "INSERT INTO im_group_member
                     (group_id, user_id, role, muted, joined_seq, read_seq, joined_at)
                     VALUES (?, ?, ?, FALSE, ?, ?, ?) ON CONFLICT (group_id, user_id) DO NOTHING",
                Dialect::MySql => "INSERT IGNORE INTO im_group_member
                     (group_id, user_id, role, muted, joined_seq, read_seq, joined_at)
                     VALUES (?, ?, ?, FALSE, ?, ?, ?)",
            }
            .into(),
            member_lock: "SELECT muted FROM im_group_member WHERE group_id = ? AND user_id = ?
                 FOR UPDATE".into(),
            member_delete: "DELETE FROM im_group_member WHERE group_id = ? AND user_id = ?".into(),
            member_set: "UPDATE im_group_member SET role = COALESCE(?, role), muted = COALESCE(?, muted)
                 WHERE group_id = ? AND user_id = ?".into(),
            member_advance: "UPDATE im_group_member SET read_seq = GREATEST(read_seq, ?)
                 WHERE group_id = ? AND user_id = ?".into(),
            member_read: "SELECT read_seq FROM im_group_member WHERE group_id = ? AND user_id = ?".into(),
            member_info: format!(
                "SELECT {MEMBER_COLUMNS} FROM im_group_member WHERE group_id = ? AND user_id = ?"
            ),
            member_page: format!(
                "SELECT {MEMBER_COLUMNS} FROM im_group_member WHERE group_id = ? AND user_id > ?
                 ORDER BY user_id LIMIT ?"
            ),
            user_groups: "SELECT group_id FROM im_group_member WHERE user_id = ? ORDER BY group_id".into(),
            read_counts: "SELECT COUNT(*), COUNT(CASE WHEN read_seq >= ? THEN 1 END)
                 FROM im_group_member WHERE group_id = ? AND joined_seq < ?".into(),
            read_page: "SELECT user_id FROM im_group_member
                 WHERE group_id = ? AND joined_seq < ? AND (read_seq >= ?) = ? AND user_id > ?
                 ORDER BY user_id LIMIT ?".into(),
            group_after: group_messages("c.seq > GREATEST(?, m.joined_seq)", "ASC"),
            group_before: group_messages("c.seq < ? AND c.seq > m.joined_seq", "DESC"),
            group_summaries: group_summaries(""),
            group_summary: group_summaries("AND m.group_id = ?"),
        };
        match d {
            Dialect::MySql => q,
            Dialect::Postgres => q.map(numbered),
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
        assert!(
            PG.group_after
                .contains("c.conv = $1 AND c.seq > GREATEST($2, m.joined_seq)")
        );
        assert!(
            PG.member_insert
                .contains("ON CONFLICT (group_id, user_id) DO NOTHING")
        );
    }
}
