//! Profiles (docs/protocol.md §3.18): the name and picture a user shows,
//! set by the user, returned with every look-up. Kept apart from the
//! account (which holds what authenticates) and checked here: a display
//! name is 1–64 characters without control characters (`""` clears it), an
//! avatar an `http(s)://` URL of at most 512 bytes without spaces.

use super::Users;
use crate::error::{Result, ServerError};
use magpie_core::{UserId, UserProfile};
use magpie_store::ProfileRecord;

const MAX_NAME_CHARS: usize = 64;
const MAX_URL_BYTES: usize = 512;

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ServerError::bad_field(format!(
            "display_name: at most {MAX_NAME_CHARS} characters, none a control character"
        )));
    }
    Ok(name.to_string())
}

fn check_url(url: &str) -> Result<String> {
    let ok = url.is_empty()
        || (url.len() <= MAX_URL_BYTES
            && (url.starts_with("https://") || url.starts_with("http://"))
            && !url.chars().any(|c| c.is_whitespace() || c.is_control()));
    if !ok {
        return Err(ServerError::bad_field(format!(
            "avatar_url: an http(s) URL of at most {MAX_URL_BYTES} bytes, or empty"
        )));
    }
    Ok(url.to_string())
}

/// `""` is unset.
fn set(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl Users {
    /// Sets `user`'s profile (both fields; `""` clears one) and answers
    /// the profile as others see it now.
    pub async fn set_profile(
        &self,
        user: UserId,
        display_name: &str,
        avatar_url: &str,
    ) -> Result<UserProfile> {
        let record = ProfileRecord {
            user,
            display_name: check_name(display_name)?,
            avatar_url: check_url(avatar_url)?,
        };
        self.store.accounts().put_profile(&record).await?;
        // This node shows the new name at once; others within NAME_TTL.
        self.names.lock().remove(user);
        self.by_id(user).await
    }

    /// `p` with its profile fields, read from the store.
    pub(super) async fn with_profile(&self, mut p: UserProfile) -> Result<UserProfile> {
        if let Some(r) = self.store.accounts().profiles(&[p.id]).await?.pop() {
            p.display_name = set(r.display_name);
            p.avatar_url = set(r.avatar_url);
        }
        Ok(p)
    }

    /// The users of `ids` that exist, each once, with their profiles, in
    /// the order asked (one profile read for all).
    pub async fn by_ids(&self, ids: &[UserId]) -> Result<Vec<UserProfile>> {
        let mut out: Vec<UserProfile> = Vec::with_capacity(ids.len());
        for &id in ids {
            if out.iter().any(|p| p.id == id) || id == UserId::SYSTEM {
                continue;
            }
            if let Some(r) = self.store.accounts().user_by_id(id).await? {
                out.push(super::users::bare(r));
            }
        }
        let found: Vec<UserId> = out.iter().map(|p| p.id).collect();
        for r in self.store.accounts().profiles(&found).await? {
            if let Some(p) = out.iter_mut().find(|p| p.id == r.user) {
                p.display_name = set(r.display_name);
                p.avatar_url = set(r.avatar_url);
            }
        }
        Ok(out)
    }
}
