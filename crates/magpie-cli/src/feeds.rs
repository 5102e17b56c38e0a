//! The feed subcommands: follow, unfollow, post and the home feed
//! (docs/protocol.md §3.16), through the SDK.

use crate::commands::Out;
use crate::error::CliError;
use magpie_core::{ClientMsgId, Post, PostId, UserId};
use magpie_sdk::HttpClient;

/// `[386…] 7: text`
fn post_line(p: &Post) -> String {
    format!("[{}] {}: {}", p.id, p.author, p.body)
}

pub(crate) async fn follow(
    http: &HttpClient,
    user: UserId,
    on: bool,
    out: Out,
) -> Result<(), CliError> {
    if on {
        let changed = http.follow(user).await?;
        let v = serde_json::json!({"following": user, "changed": changed});
        out.value(&v, || {
            if changed {
                format!("following {user}")
            } else {
                format!("already following {user}")
            }
        });
    } else {
        http.unfollow(user).await?;
        let v = serde_json::json!({"unfollowed": user});
        out.value(&v, || format!("not following {user}"));
    }
    Ok(())
}

/// Posts with one client id, retried (once) on a retryable error: the
/// retry cannot make a second post.
pub(crate) async fn post(http: &HttpClient, text: &str, out: Out) -> Result<(), CliError> {
    let cmid = ClientMsgId::new_v7();
    let r = match http.post(cmid, text).await {
        Err(e) if e.is_retryable() => http.post(cmid, text).await?,
        other => other?,
    };
    out.value(&r, || {
        let dup = if r.duplicate { " (duplicate)" } else { "" };
        format!("posted {}{dup}", r.post.id)
    });
    Ok(())
}

/// One page of the home feed, newest first.
pub(crate) async fn feed(
    http: &HttpClient,
    before: Option<i64>,
    limit: Option<usize>,
    out: Out,
) -> Result<(), CliError> {
    let page = http.feed(before.map(PostId), limit).await?;
    out.value(&page, || {
        let mut lines: Vec<String> = page.posts.iter().map(post_line).collect();
        match page.next {
            Some(next) => lines.push(format!("(older posts: --before {next})")),
            None if lines.is_empty() => lines.push("no posts".into()),
            None => {}
        }
        lines.join("\n")
    });
    Ok(())
}
