//! Sending into a conversation: who a target names (a user or a group),
//! the sends that refer to a message — replies, edits, recalls
//! (docs/protocol.md §5.10) — and the mentions a group message's text
//! makes (`@name`, `@all`: §5.11). Every send is retried with its client
//! id, so a retry cannot store it twice.

use crate::commands::{Out, send_with_retry};
use crate::error::CliError;
use crate::users::resolve;
use magpie_core::{ClientMsgId, ConvId, GroupId, Seq, UserId};
use magpie_proto::http::SendRequest;
use magpie_sdk::HttpClient;

/// A conversation as the command line names it: `g:12` (or `#12`) for a
/// group, else a user (id, username, `@name` for an all-digit one).
pub(crate) enum Target {
    User(UserId),
    Group(GroupId),
}

impl Target {
    pub(crate) async fn resolve(http: &HttpClient, s: &str) -> Result<Target, CliError> {
        if let Some(id) = s.strip_prefix("g:").or_else(|| s.strip_prefix('#')) {
            return match id.parse::<i64>() {
                Ok(g) if g > 0 => Ok(Target::Group(GroupId(g))),
                _ => Err(CliError::usage(format!("{s}: a group is g:<id>"))),
            };
        }
        Ok(Target::User(resolve(http, s).await?))
    }

    pub(crate) fn conv(&self, me: UserId) -> ConvId {
        match *self {
            Target::User(peer) => ConvId::direct(me, peer),
            Target::Group(g) => ConvId::group(g),
        }
    }
}

/// What a send refers to, if anything.
#[derive(Default)]
pub(crate) struct Refs {
    pub(crate) reply_to: Option<Seq>,
    pub(crate) edit: Option<Seq>,
    pub(crate) recall: Option<Seq>,
}

/// Sends `body` to `target` with `refs`, and prints what was stored.
pub(crate) async fn send(
    http: &HttpClient,
    target: &Target,
    body: String,
    refs: Refs,
    out: Out,
) -> Result<(), CliError> {
    let (to, group) = match *target {
        Target::User(u) => (u, None),
        Target::Group(g) => (UserId(0), Some(g)),
    };
    let what = match (refs.edit, refs.recall) {
        (Some(_), _) => "edited",
        (_, Some(_)) => "recalled",
        _ => "sent",
    };
    let (mentions, mention_all) = match (target, refs.edit.or(refs.recall)) {
        (Target::Group(_), None) => mentions_in(http, &body).await?,
        _ => (Vec::new(), false),
    };
    let req = SendRequest {
        mentions,
        mention_all,
        sample: false,
        to,
        cmid: ClientMsgId::new_v7(),
        body,
        persistence: None,
        group,
        chain: None,
        reply_to: refs.reply_to,
        edit: refs.edit,
        recall: refs.recall,
    };
    let r = send_with_retry(http, &req).await?;
    out.value(&r, || {
        let dup = if r.duplicate { " (duplicate)" } else { "" };
        format!("{what} [{} #{}] id {}{dup}", r.conv, r.seq, r.server_id)
    });
    Ok(())
}

/// The mentions in a group message's text: each `@all` or `@username`
/// word (trailing punctuation ignored). A name that is no user is an
/// error before anything is sent.
async fn mentions_in(http: &HttpClient, body: &str) -> Result<(Vec<UserId>, bool), CliError> {
    let (mut users, mut all) = (Vec::new(), false);
    for word in body.split_whitespace() {
        let Some(name) = word.strip_prefix('@') else {
            continue;
        };
        let name = name.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_');
        match name {
            "" => {}
            "all" => all = true,
            name => users.push(http.user_by_name(name).await?.id),
        }
    }
    users.sort_unstable();
    users.dedup();
    Ok((users, all))
}
