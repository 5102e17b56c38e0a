//! The SQL text of groups in both dialects, written once (see `queries`
//! for the conventions): group and member rows, a member's view of the
//! group timeline, read-by counts.

use super::dialect::Dialect;
use super::queries::{MESSAGE_COLUMNS, queries};

queries! { GroupQueries:
    insert_group, last_seq, group_lock, group_share, group_count, group_rename, group_dissolve,
    group_info, member_lock, member_delete, member_set, member_advance, group_owner, owner_set,
    member_role,
    member_read, member_info, member_page, user_groups, read_counts, read_positions, member_count,
    read_page, group_after,
    group_before, group_summaries, group_summary,
}

/// The group columns `sql::group_reads::group_of` decodes; the last
/// sequence comes from the group conversation's row (bound as `g:{id}`).
const GROUP_COLUMNS: &str =
    "g.id, g.name, g.owner_uid, g.created_at, g.members, g.history, g.dissolved,
     COALESCE((SELECT v.last_seq FROM conversations v WHERE v.conv = ?), 0), g.member_version";

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
/// group conversation's row, a primary-key seek per membership), their
/// mention count (a range of `im_mention`'s key, docs/protocol.md §5.11) and
/// their mute.
fn group_summaries(filter: &str) -> String {
    format!(
        "SELECT m.group_id, m.read_seq, m.joined_seq,
                COALESCE((SELECT v.last_seq FROM conversations v
                          WHERE v.conv = CONCAT('g:', m.group_id)), 0),
                (SELECT COUNT(DISTINCT x.seq) FROM im_mention x
                 WHERE x.conv = CONCAT('g:', m.group_id)
                   AND x.seq > GREATEST(m.read_seq, m.joined_seq)
                   AND x.user_id IN (m.user_id, 0) AND x.from_uid <> m.user_id
                   AND EXISTS (SELECT 1 FROM im_msg_content c
                               WHERE c.conv = x.conv AND c.seq = x.seq AND c.revised >= 0)),
                m.notify_muted
         FROM im_group_member m WHERE m.user_id = ? {filter} ORDER BY m.group_id"
    )
}

impl GroupQueries {
    pub(super) fn new(d: Dialect) -> GroupQueries {
        // PostgreSQL returns a generated id with the insert; MySQL reports
        // it with the result (`db::Exec::insert_id`).
        let returning = match d {
            Dialect::Postgres => " RETURNING id",
            Dialect::MySql => "",
        };
        let q = GroupQueries {
            insert_group: format!(
                "INSERT INTO im_group (name, owner_uid, created_at, members, history)
                 VALUES (?, ?, ?, 0, ?){returning}"
            ),
            last_seq: "SELECT last_seq FROM conversations WHERE conv = ?".into(),
            // Membership changes lock the group row first, then member rows;
            // accept takes the same order after its conversation row.
            group_lock: "SELECT history FROM im_group WHERE id = ? FOR UPDATE".into(),
            group_share: format!(
                "SELECT dissolved, member_version, members FROM im_group WHERE id = ? {}",
                d.for_share()
            ),
            // Every join and leave: the count and the membership version.
            group_count: "UPDATE im_group
                 SET members = members + ?, member_version = member_version + 1 WHERE id = ?"
                .into(),
            group_rename: "UPDATE im_group SET name = ? WHERE id = ?".into(),
            group_owner: "SELECT owner_uid FROM im_group WHERE id = ? FOR UPDATE".into(),
            owner_set: "UPDATE im_group SET owner_uid = ? WHERE id = ?".into(),
            member_role: "UPDATE im_group_member SET role = ? WHERE group_id = ? AND user_id = ?"
                .into(),
            group_dissolve: "UPDATE im_group SET dissolved = TRUE WHERE id = ?".into(),
            group_info: format!("SELECT {GROUP_COLUMNS} FROM im_group g WHERE g.id = ?"),
            member_lock: "SELECT muted FROM im_group_member WHERE group_id = ? AND user_id = ?
                 FOR UPDATE"
                .into(),
            member_delete: "DELETE FROM im_group_member WHERE group_id = ? AND user_id = ?".into(),
            member_set:
                "UPDATE im_group_member SET role = COALESCE(?, role), muted = COALESCE(?, muted)
                 WHERE group_id = ? AND user_id = ?"
                    .into(),
            member_advance: "UPDATE im_group_member SET read_seq = GREATEST(read_seq, ?)
                 WHERE group_id = ? AND user_id = ?"
                .into(),
            member_read: "SELECT read_seq FROM im_group_member WHERE group_id = ? AND user_id = ?"
                .into(),
            member_info: format!(
                "SELECT {MEMBER_COLUMNS} FROM im_group_member WHERE group_id = ? AND user_id = ?"
            ),
            member_page: format!(
                "SELECT {MEMBER_COLUMNS} FROM im_group_member WHERE group_id = ? AND user_id > ?
                 ORDER BY user_id LIMIT ?"
            ),
            user_groups: "SELECT group_id FROM im_group_member WHERE user_id = ? ORDER BY group_id"
                .into(),
            read_counts: "SELECT COUNT(*), COUNT(CASE WHEN read_seq >= ? THEN 1 END)
                 FROM im_group_member WHERE group_id = ? AND joined_seq < ?"
                .into(),
            // Members who read at or past ?: by read position, and by
            // join position for those who joined at or after ?
            // (`read_counts`; -1 is `read_counts::EARLY`).
            read_positions:
                "SELECT read_seq, CASE WHEN joined_seq >= ? THEN joined_seq ELSE -1 END AS j,
                 COUNT(*) FROM im_group_member WHERE group_id = ? AND read_seq >= ?
                 GROUP BY read_seq, j"
                    .into(),
            member_count: "SELECT members FROM im_group WHERE id = ?".into(),
            read_page: "SELECT user_id FROM im_group_member
                 WHERE group_id = ? AND joined_seq < ? AND (read_seq >= ?) = ? AND user_id > ?
                 ORDER BY user_id LIMIT ?"
                .into(),
            group_after: group_messages("c.seq > GREATEST(?, m.joined_seq)", "ASC"),
            group_before: group_messages("c.seq < ? AND c.seq > m.joined_seq", "DESC"),
            group_summaries: group_summaries(""),
            group_summary: group_summaries("AND m.group_id = ?"),
        };
        q.map(|s| d.finish(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_statements_in_both_dialects() {
        let (pg, my) = (
            GroupQueries::new(Dialect::Postgres),
            GroupQueries::new(Dialect::MySql),
        );
        assert!(
            pg.group_after
                .contains("c.conv = $1 AND c.seq > GREATEST($2, m.joined_seq)")
        );
        assert!(my.group_share.ends_with("LOCK IN SHARE MODE"));
        assert!(pg.insert_group.ends_with("RETURNING id"));
    }
}
