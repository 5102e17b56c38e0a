//! Multi-row statements for `accept`: one statement per step for a whole
//! batch of messages instead of one per message (ARCHITECTURE.md: no
//! per-message round trip where a batch would do).
//!
//! Their text depends on the row count, so they are not kept in the
//! driver's statement cache (`persistent(false)`): each is parsed once per
//! use, which costs less than the round trips it replaces.

use super::dialect::Dialect;

/// Rows per statement: keeps every statement far below both engines'
/// limit of 65,535 bound parameters (ten per content row).
pub(crate) const CHUNK: usize = 500;

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

    fn finish(&self, sql: String) -> String {
        self.dialect.finish(&sql)
    }

    /// Creates or locks `rows` conversation rows without changing them, in
    /// the order given (callers sort, so every transaction locks in one
    /// global order and none deadlocks on another). On PostgreSQL the same
    /// statement returns their `(conv, last_seq)` (see `lock_returns`).
    pub fn lock_convs(&self, rows: usize) -> String {
        let returning = match self.dialect {
            Dialect::Postgres => " RETURNING conv, last_seq",
            Dialect::MySql => "",
        };
        self.finish(format!(
            "INSERT INTO conversations (conv, last_seq) VALUES {} {}{returning}",
            tuples(2, rows),
            self.dialect
                .upsert_lock("conversations", "conv", "last_seq")
        ))
    }

    /// Whether `lock_convs` returns the rows it locked; without, `last_seqs`
    /// reads them (MySQL has no `RETURNING`).
    pub fn lock_returns(&self) -> bool {
        self.dialect == Dialect::Postgres
    }

    /// Sets each row's conversation's `last_seq` (the rows exist and are
    /// locked: `lock_convs` ran first in the same transaction).
    pub fn set_last_seqs(&self, rows: usize) -> String {
        self.finish(format!(
            "INSERT INTO conversations (conv, last_seq) VALUES {} {}",
            tuples(2, rows),
            self.dialect.upsert("conv", &["last_seq"])
        ))
    }

    /// The `last_seq` of `rows` conversations.
    pub fn last_seqs(&self, rows: usize) -> String {
        self.finish(format!(
            "SELECT conv, last_seq FROM conversations WHERE conv IN ({})",
            vec!["?"; rows].join(", ")
        ))
    }

    pub fn contents(&self, rows: usize) -> String {
        self.finish(format!(
            "INSERT INTO im_msg_content
             (server_id, conv, seq, from_uid, to_uid, cmid, body, persistence, sent_at, expire_at)
             VALUES {}",
            tuples(10, rows)
        ))
    }

    pub fn boxes(&self, rows: usize) -> String {
        self.finish(format!(
            "INSERT INTO im_user_msg_box (owner_uid, other_uid, conv, seq, server_id, box_type) VALUES {}",
            tuples(6, rows)
        ))
    }

    /// Each (owner, conv) at most once per statement: PostgreSQL refuses to
    /// update one row twice in one upsert.
    pub fn summaries(&self, rows: usize) -> String {
        self.finish(format!(
            "INSERT INTO user_conv (owner_uid, conv, peer_uid, last_seq, read_seq) VALUES {} {}",
            tuples(4, rows).replace("?)", "?, 0)"),
            self.dialect
                .upsert("owner_uid, conv", &["last_seq", "peer_uid"])
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_have_one_parameter_per_value() {
        let pg = PG_BATCH.contents(3);
        assert!(pg.contains("$30") && !pg.contains("$31") && !pg.contains('?'));
        let my = MYSQL_BATCH.contents(3);
        assert_eq!(my.matches('?').count(), 30);
        assert!(PG_BATCH.last_seqs(2).ends_with("IN ($1, $2)"));
    }

    #[test]
    fn summaries_insert_a_zero_read_position() {
        let my = MYSQL_BATCH.summaries(2);
        assert!(my.contains("VALUES (?, ?, ?, ?, 0), (?, ?, ?, ?, 0) ON DUPLICATE"));
        let pg = PG_BATCH.summaries(1);
        assert!(pg.contains("VALUES ($1, $2, $3, $4, 0) ON CONFLICT"));
        let lock = PG_BATCH.lock_convs(1);
        assert!(lock.ends_with("SET last_seq = conversations.last_seq RETURNING conv, last_seq"));
        assert!(MYSQL_BATCH.lock_convs(1).ends_with("last_seq = last_seq"));
    }
}
