//! Profiles on SQL (docs/protocol.md §3.18): one row per user who set one,
//! apart from the account row; read in one statement per `CHUNK` users.

use super::batch::CHUNK;
use super::db::{Arg, args};
use super::store::SqlStore;
use super::{Retry, retrying, store_err};
use crate::error::Result;
use crate::store::ProfileRecord;
use magpie_core::{UserId, now_ms};

impl SqlStore {
    pub(super) async fn put_profile_row(&self, p: &ProfileRecord) -> Result<()> {
        retrying("put_profile", Retry::Transient, || async {
            let mut c = self.pool.acquire().await?;
            let a = args![
                p.user.0,
                p.display_name.as_str(),
                p.avatar_url.as_str(),
                now_ms()
            ];
            c.exec().execute(self.q.put_profile.as_str(), a).await?;
            Ok(())
        })
        .await
    }

    pub(super) async fn profile_rows(&self, users: &[UserId]) -> Result<Vec<ProfileRecord>> {
        let mut out = Vec::new();
        let mut c = self.pool.acquire().await.map_err(store_err)?;
        for chunk in users.chunks(CHUNK) {
            let a: Vec<Arg<'_>> = chunk.iter().map(|u| Arg::from(u.0)).collect();
            let sql = self.b.profiles(chunk.len());
            let rows: Vec<(i64, String, String)> = c.exec().all(sql, a).await.map_err(store_err)?;
            out.extend(
                rows.into_iter()
                    .map(|(u, display_name, avatar_url)| ProfileRecord {
                        user: UserId(u),
                        display_name,
                        avatar_url,
                    }),
            );
        }
        Ok(out)
    }
}
