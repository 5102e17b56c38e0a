//! Multi-row statements for `accept`: one statement per step for a whole
//! batch of messages instead of one per message (ARCHITECTURE.md: no
//! per-message round trip where a batch would do).
//!
//! Their text depends on the row count. Statements of up to `CACHED_ROWS`
//! rows (the common case at low load: one message at a time) are kept in
//! the driver's statement cache like any fixed statement; larger ones are
//! parsed once per use (`persistent(false)`), which costs less than the
//! round trips they replace. Why the small ones must be cached: on MySQL an
//! uncached statement is closed after use with a message that has no
//! answer, and the next statement written behind it waits for the
//! server's delayed TCP acknowledgement (sqlx leaves Nagle's algorithm on):
//! about 40 ms per statement.

use super::db::Sql;
use super::dialect::Dialect;

/// Rows per statement: keeps every statement far below both engines'
/// limit of 65,535 bound parameters (ten per content row).
pub(crate) const CHUNK: usize = 500;

/// Statements of at most this many rows are prepared once per connection
/// and cached (a handful of kinds times this many sizes: far below the
/// driver's cache of 100 and MySQL's `max_prepared_stmt_count`).
const CACHED_ROWS: usize = 8;

pub(crate) struct BatchSql {
    dialect: Dialect,
}

static PG_BATCH: BatchSql = BatchSql {
    dialect: Dialect::Postgres,
};
static MYSQL_BATCH: BatchSql = BatchSql {
    dialect: Dialect::MySql,
};

/// `(?, ?, …)` repeated `rows` times, comma-separated.
fn tuples(cols: usize, rows: usize) -> String {
    let one = format!("({})", vec!["?"; cols].join(", "));
    vec![one; rows].join(", ")
}

impl BatchSql {
    /// The statements of one dialect.
    pub(crate) fn of(d: Dialect) -> &'static BatchSql {
        match d {
            Dialect::Postgres => &PG_BATCH,
            Dialect::MySql => &MYSQL_BATCH,
        }
    }

    fn finish(&self, sql: String, rows: usize) -> Sql {
        let sql = self.dialect.finish(&sql);
        if rows <= CACHED_ROWS {
            Sql::Cached(sql)
        } else {
            Sql::Batch(sql)
        }
    }

    /// Creates or locks `rows` conversation rows, in the order given
    /// (callers sort, so every transaction locks in one global order and
    /// none deadlocks on another), reserving sequences: each row's bound
    /// `last_seq` is added to the stored one. On PostgreSQL the same
    /// statement returns the new `(conv, last_seq)` (see `lock_returns`).
    pub fn lock_convs(&self, rows: usize) -> Sql {
        let returning = match self.dialect {
            Dialect::Postgres => " RETURNING conv, last_seq",
            Dialect::MySql => "",
        };
        self.finish(
            format!(
                "INSERT INTO conversations (conv, last_seq) VALUES {} {}{returning}",
                tuples(2, rows),
                self.dialect.upsert_add("conversations", "conv", "last_seq")
            ),
            rows,
        )
    }

    /// MySQL's `lock_convs` for one row, answering without a `SELECT`:
    /// `LAST_INSERT_ID(expr)` puts the new `last_seq` of an existing row in
    /// the statement's answer (a created row sets none: it holds what was
    /// bound).
    pub fn lock_conv_mysql(&self) -> Sql {
        Sql::Static(
            "INSERT INTO conversations (conv, last_seq) VALUES (?, ?) \
             ON DUPLICATE KEY UPDATE last_seq = LAST_INSERT_ID(last_seq + VALUES(last_seq))",
        )
    }

    /// Whether `lock_convs` returns the rows it locked; without, `last_seqs`
    /// reads them (MySQL has no `RETURNING`).
    pub fn lock_returns(&self) -> bool {
        self.dialect == Dialect::Postgres
    }

    /// Sets each row's conversation's `last_seq` (the rows exist and are
    /// locked: `lock_convs` ran first in the same transaction).
    pub fn set_last_seqs(&self, rows: usize) -> Sql {
        self.finish(
            format!(
                "INSERT INTO conversations (conv, last_seq) VALUES {} {}",
                tuples(2, rows),
                self.dialect.upsert("conv", &["last_seq"])
            ),
            rows,
        )
    }

    /// The `last_seq` of `rows` conversations.
    pub fn last_seqs(&self, rows: usize) -> Sql {
        self.finish(
            format!(
                "SELECT conv, last_seq FROM conversations WHERE conv IN ({})",
                vec!["?"; rows].join(", ")
            ),
            rows,
        )
    }

    pub fn contents(&self, rows: usize) -> Sql {
        self.finish(
            format!(
                "INSERT INTO im_msg_content
             (server_id, conv, seq, from_uid, to_uid, cmid, body, persistence, sent_at, expire_at,
              searchable, meta)
             VALUES {}",
                tuples(12, rows)
            ),
            rows,
        )
    }

    pub fn boxes(&self, rows: usize) -> Sql {
        self.finish(format!(
            "INSERT INTO im_user_msg_box (owner_uid, other_uid, conv, seq, server_id, box_type) VALUES {}",
            tuples(6, rows)
        ), rows)
    }

    /// Which of `rows` users muted a conversation (bind the group id, or
    /// the direct conversation's id, first).
    pub fn muted_among(&self, group: bool, rows: usize) -> Sql {
        let (user, table, key) = match group {
            true => ("user_id", "im_group_member", "group_id"),
            false => ("owner_uid", "user_conv", "conv"),
        };
        self.finish(
            format!(
                "SELECT {user} FROM {table} WHERE {key} = ? AND notify_muted = TRUE AND {user} IN ({})",
                vec!["?"; rows].join(", ")
            ),
            rows,
        )
    }

    /// Mention rows of group messages (docs/protocol.md §5.11).
    pub fn mentions(&self, rows: usize) -> Sql {
        self.finish(
            format!(
                "INSERT INTO im_mention (conv, seq, user_id, from_uid, expire_at) VALUES {}",
                tuples(5, rows)
            ),
            rows,
        )
    }

    /// Which of `rows` users are already members of a group (bind the
    /// group first).
    pub fn members_present(&self, rows: usize) -> Sql {
        self.finish(
            format!(
                "SELECT user_id FROM im_group_member WHERE group_id = ? AND user_id IN ({})",
                vec!["?"; rows].join(", ")
            ),
            rows,
        )
    }

    /// Adds `rows` members (none already there: `members_present` ran
    /// first, under the group's row lock).
    pub fn members(&self, rows: usize) -> Sql {
        self.finish(
            format!(
                "INSERT INTO im_group_member
                 (group_id, user_id, role, muted, joined_seq, read_seq, joined_at) VALUES {}",
                tuples(6, rows).replace("?, ?, ?, ?, ?, ?", "?, ?, ?, FALSE, ?, ?, ?")
            ),
            rows,
        )
    }

    /// Each (owner, conv) at most once per statement: PostgreSQL refuses to
    /// update one row twice in one upsert.
    pub fn summaries(&self, rows: usize) -> Sql {
        self.finish(format!(
            "INSERT INTO user_conv (owner_uid, conv, peer_uid, last_seq, read_seq) VALUES {} {}",
            tuples(4, rows).replace("?)", "?, 0)"),
            self.dialect
                .upsert("owner_uid, conv", &["last_seq", "peer_uid"])
        ), rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_have_one_parameter_per_value() {
        let pg = PG_BATCH.contents(3).text().to_string();
        assert!(pg.contains("$36") && !pg.contains("$37") && !pg.contains('?'));
        let my = MYSQL_BATCH.contents(3).text().to_string();
        assert_eq!(my.matches('?').count(), 36);
        assert!(
            PG_BATCH
                .last_seqs(2)
                .text()
                .to_string()
                .ends_with("IN ($1, $2)")
        );
    }

    #[test]
    fn small_batches_are_cached_large_ones_not() {
        assert!(matches!(MYSQL_BATCH.contents(1), Sql::Cached(_)));
        assert!(matches!(MYSQL_BATCH.contents(CACHED_ROWS), Sql::Cached(_)));
        assert!(matches!(PG_BATCH.boxes(CACHED_ROWS + 1), Sql::Batch(_)));
    }

    #[test]
    fn members_are_added_unmuted() {
        let pg = PG_BATCH.members(2).text().to_string();
        assert!(pg.ends_with(
            "VALUES ($1, $2, $3, FALSE, $4, $5, $6), ($7, $8, $9, FALSE, $10, $11, $12)"
        ));
        let my = MYSQL_BATCH.members_present(3).text().to_string();
        assert!(my.ends_with("group_id = ? AND user_id IN (?, ?, ?)"));
    }

    #[test]
    fn summaries_insert_a_zero_read_position() {
        let my = MYSQL_BATCH.summaries(2).text().to_string();
        assert!(my.contains("VALUES (?, ?, ?, ?, 0), (?, ?, ?, ?, 0) ON DUPLICATE"));
        let pg = PG_BATCH.summaries(1).text().to_string();
        assert!(pg.contains("VALUES ($1, $2, $3, $4, 0) ON CONFLICT"));
        let lock = PG_BATCH.lock_convs(1).text().to_string();
        assert!(lock.ends_with(
            "SET last_seq = conversations.last_seq + EXCLUDED.last_seq RETURNING conv, last_seq"
        ));
        assert!(
            MYSQL_BATCH
                .lock_convs(1)
                .text()
                .to_string()
                .ends_with("last_seq = last_seq + VALUES(last_seq)")
        );
    }
}
