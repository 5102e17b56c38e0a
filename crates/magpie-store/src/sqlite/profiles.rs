//! Profiles on SQLite (docs/protocol.md §3.18): one row per user who set
//! one, apart from the account row.

use super::schema::corrupt_or;
use crate::error::Result;
use crate::store::ProfileRecord;
use magpie_core::{UserId, now_ms};
use rusqlite::{Connection, params};

pub(crate) fn put(c: &Connection, p: &ProfileRecord) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO user_profile (user_id, display_name, avatar_url, updated_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name,
           avatar_url = excluded.avatar_url, updated_at = excluded.updated_at",
    )?
    .execute(params![p.user.0, p.display_name, p.avatar_url, now_ms()])?;
    Ok(())
}

pub(crate) fn get(c: &Connection, users: &[UserId]) -> Result<Vec<ProfileRecord>> {
    let mut stmt =
        c.prepare_cached("SELECT display_name, avatar_url FROM user_profile WHERE user_id = ?1")?;
    let mut out = Vec::new();
    for &user in users {
        let mut rows = stmt.query([user.0])?;
        if let Some(r) = rows.next().map_err(corrupt_or)? {
            out.push(ProfileRecord {
                user,
                display_name: r.get(0)?,
                avatar_url: r.get(1)?,
            });
        }
    }
    Ok(out)
}
