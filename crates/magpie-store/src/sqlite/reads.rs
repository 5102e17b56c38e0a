//! Read queries and the pool of read-only connections they run on.
//!
//! In WAL mode a reader sees the last committed snapshot and never waits for
//! the writer, so reads run in parallel on `spawn_blocking` threads, each
//! borrowing one pooled connection. The pool lock is held only to pop/push a
//! connection, never while a query runs or across an `.await`.

use super::schema::{MESSAGE_COLUMNS, conv_at, corrupt_or, message_from_row, open_reader};
use crate::error::{Result, StoreError};
use crate::store::{ConvSummary, Page, UserRecord};
use magpie_core::{
    Accepted, ClientMsgId, ClientSettings, ConvId, DeviceId, Message, Seq, ServerMsgId, UserId,
};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Read connections kept open; also the number of reads run at once.
pub(crate) const READERS: usize = 4;

pub(crate) struct ReadPool {
    path: PathBuf,
    conns: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
}

impl ReadPool {
    pub(crate) fn open(path: PathBuf) -> Result<ReadPool> {
        let conns = (0..READERS)
            .map(|_| open_reader(&path))
            .collect::<Result<Vec<_>>>()?;
        Ok(ReadPool {
            path,
            conns: Arc::new(Mutex::new(conns)),
            permits: Arc::new(Semaphore::new(READERS)),
        })
    }

    /// Runs `f` on a pooled connection in a blocking thread.
    pub(crate) async fn run<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        let conns = self.conns.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // Normally a connection is free for every permit; one can be missing
            // if an earlier read panicked while holding it, so reopen then.
            let conn = match conns.lock().pop() {
                Some(c) => c,
                None => open_reader(&path)?,
            };
            let out = f(&conn);
            conns.lock().push(conn);
            out
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite read task failed: {e}")))?
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("sqlite read pool closed".into())
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: UserId(r.get(0)?),
        username: r.get(1)?,
        password_hash: r.get(2)?,
        created_at: r.get(3)?,
    })
}

pub(crate) fn user_by_name(c: &Connection, username: &str) -> Result<Option<UserRecord>> {
    Ok(c.prepare_cached(
        "SELECT id, username, password_hash, created_at FROM users WHERE username = ?1",
    )?
    .query_row([username], user_from_row)
    .optional()?)
}

pub(crate) fn user_by_id(c: &Connection, id: UserId) -> Result<Option<UserRecord>> {
    Ok(
        c.prepare_cached(
            "SELECT id, username, password_hash, created_at FROM users WHERE id = ?1",
        )?
        .query_row([id.0], user_from_row)
        .optional()?,
    )
}

/// The device's own row wins over the user default (`device = ''`); with
/// neither, the built-in defaults.
pub(crate) fn get_settings(c: &Connection, user: UserId, device: &str) -> Result<ClientSettings> {
    let json: Option<String> = c
        .prepare_cached(
            "SELECT json FROM settings WHERE user_id = ?1 AND device IN (?2, '')
             ORDER BY device = '' LIMIT 1",
        )?
        .query_row(params![user.0, device], |r| r.get(0))
        .optional()?;
    match json {
        Some(j) => serde_json::from_str(&j)
            .map_err(|e| StoreError::Corrupt(format!("settings of user {user}: {e}"))),
        None => Ok(ClientSettings::default()),
    }
}

/// The rows of the user's devices (not the user default, `device = ''`),
/// by device id; a row whose device id is not valid any more is skipped.
pub(crate) fn device_settings(
    c: &Connection,
    user: UserId,
) -> Result<Vec<(DeviceId, ClientSettings)>> {
    let mut stmt = c.prepare_cached(
        "SELECT device, json FROM settings WHERE user_id = ?1 AND device <> '' ORDER BY device",
    )?;
    let rows = stmt.query_map([user.0], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (device, json) = row?;
        let s: ClientSettings = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("settings of user {user}: {e}")))?;
        if let Ok(d) = DeviceId::new(device) {
            out.push((d, s));
        }
    }
    Ok(out)
}

/// The stored result for (from, cmid), marked as a duplicate.
pub(crate) fn lookup_cmid(
    c: &Connection,
    from: UserId,
    cmid: ClientMsgId,
) -> Result<Option<Accepted>> {
    c.prepare_cached("SELECT server_id, conv, seq, sent_at FROM im_msg_content WHERE from_uid = ?1 AND cmid = ?2")?
        .query_row(params![from.0, &cmid.as_bytes()[..]], |r| {
            Ok(Accepted {
                server_id: ServerMsgId(r.get(0)?),
                conv: conv_at(r, 1)?,
                seq: r.get(2)?,
                sent_at: r.get(3)?,
                duplicate: true,
                group: None,
            })
        })
        .optional()
        .map_err(corrupt_or)
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A direct conversation is visible to its two parties only (the
/// conversation id names them): anyone else gets nothing, never someone
/// else's messages.
fn party(owner: UserId, conv: &ConvId) -> bool {
    conv.peer_of(owner).is_some()
}

/// A page of `conv` that `owner` may see: all of a direct conversation for
/// its two parties, a group's timeline from the member's join on, nothing
/// for anyone else.
pub(crate) fn page(
    c: &Connection,
    owner: UserId,
    conv: &ConvId,
    page: Page,
    limit: usize,
) -> Result<Vec<Message>> {
    let floor = match conv.group_id() {
        Some(g) => super::group_reads::joined(c, g, owner)?,
        None => party(owner, conv).then_some(0),
    };
    let Some(floor) = floor else {
        return Ok(Vec::new());
    };
    let (window, bound) = match page {
        Page::After(s) => ("c.seq > MAX(?2, ?3) ORDER BY c.seq ASC", s),
        Page::Before(s) => ("c.seq > ?2 AND c.seq < ?3 ORDER BY c.seq DESC", s),
    };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM im_msg_content c WHERE c.conv = ?1 AND {window} LIMIT ?4"
    );
    c.prepare_cached(&sql)?
        .query_map(
            params![conv.as_str(), floor, bound, limit_param(limit)],
            message_from_row,
        )?
        .collect::<rusqlite::Result<_>>()
        .map_err(corrupt_or)
}

/// Searchable messages after `after` in (conv, seq) order: a walk of the
/// unique (conv, seq) index (`MessageStore::scan_searchable`).
pub(crate) fn scan_searchable(
    c: &Connection,
    after: Option<(ConvId, Seq)>,
    limit: usize,
) -> Result<Vec<Message>> {
    let (conv, seq) = after
        .map(|(c, s)| (c.as_str().to_owned(), s))
        .unwrap_or_default();
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM im_msg_content c
         WHERE (c.conv > ?1 OR (c.conv = ?1 AND c.seq > ?2)) AND c.searchable = 1
         ORDER BY c.conv, c.seq LIMIT ?3"
    );
    c.prepare_cached(&sql)?
        .query_map(params![conv, seq, limit_param(limit)], message_from_row)?
        .collect::<rusqlite::Result<_>>()
        .map_err(corrupt_or)
}

/// Summaries with the exact unread count: the messages addressed to the
/// owner above the read position (a range of the (conv, seq) index; a note
/// to self is never unread).
fn summaries(c: &Connection, owner: UserId, conv: Option<&ConvId>) -> Result<Vec<ConvSummary>> {
    // Two statements rather than `(?2 IS NULL OR conv = ?2)`, so the single
    // lookup is a primary-key seek.
    let filter = if conv.is_some() {
        "AND u.conv = ?2"
    } else {
        ""
    };
    let sql = format!(
        "SELECT u.conv, u.peer_uid, u.last_seq, u.read_seq,
                (SELECT COUNT(*) FROM im_msg_content c
                 WHERE c.conv = u.conv AND c.seq > u.read_seq
                   AND c.to_uid = u.owner_uid AND c.from_uid <> u.owner_uid),
                u.notify_muted
         FROM user_conv u WHERE u.owner_uid = ?1 {filter} ORDER BY u.conv"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let row = |r: &rusqlite::Row<'_>| {
        Ok(ConvSummary {
            conv: conv_at(r, 0)?,
            peer: UserId(r.get(1)?),
            last_seq: r.get(2)?,
            read_seq: r.get(3)?,
            unread: r.get(4)?,
            mentions: 0,
            muted: r.get::<_, i64>(5)? != 0,
        })
    };
    let rows = match conv {
        Some(conv) => stmt
            .query_map(params![owner.0, conv.as_str()], row)?
            .collect::<rusqlite::Result<_>>(),
        None => stmt
            .query_map(params![owner.0], row)?
            .collect::<rusqlite::Result<_>>(),
    };
    rows.map_err(corrupt_or)
}

pub(crate) fn conversations(c: &Connection, owner: UserId) -> Result<Vec<ConvSummary>> {
    let mut all = summaries(c, owner, None)?;
    all.extend(super::group_reads::summaries(c, owner, None)?);
    Ok(all)
}

pub(crate) fn conversation(
    c: &Connection,
    owner: UserId,
    conv: &ConvId,
) -> Result<Option<ConvSummary>> {
    if let Some(g) = conv.group_id() {
        return Ok(super::group_reads::summaries(c, owner, Some(g))?.pop());
    }
    Ok(summaries(c, owner, Some(conv))?.pop())
}
