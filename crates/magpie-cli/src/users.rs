//! Naming users on the command line: an id (`7`) or a username (`bob`;
//! `@123` for a username that is all digits), resolved by the server's
//! exact look-up (docs/protocol.md §3.18), and `whois`.

use crate::commands::Out;
use crate::error::CliError;
use magpie_core::UserId;
use magpie_sdk::HttpClient;

/// The id of the user `who` names.
pub(crate) async fn resolve(http: &HttpClient, who: &str) -> Result<UserId, CliError> {
    if let Some(name) = who.strip_prefix('@') {
        return Ok(http.user_by_name(name).await?.id);
    }
    match who.parse::<i64>() {
        Ok(id) => Ok(UserId(id)),
        Err(_) => Ok(http.user_by_name(who).await?.id),
    }
}

/// Prints who `who` is: id and username.
pub(crate) async fn whois(http: &HttpClient, who: &str, out: Out) -> Result<(), CliError> {
    let id = resolve(http, who).await?;
    let profile = http.user(id).await?;
    out.value(&profile, || describe(&profile));
    Ok(())
}

/// One line: id, username, and the profile's fields when set.
pub(crate) fn describe(p: &magpie_core::UserProfile) -> String {
    let mut line = format!("user {} is {}", p.id, p.username);
    if let Some(name) = &p.display_name {
        line.push_str(&format!(" ({name})"));
    }
    if let Some(url) = &p.avatar_url {
        line.push_str(&format!(", avatar {url}"));
    }
    line
}
