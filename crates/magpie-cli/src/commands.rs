//! Owns what each subcommand does: loading the profile, calling the server
//! through the SDK, printing the result (text, or one JSON value per line with
//! `--json`), and saving tokens the SDK refreshed along the way.

use crate::chat::{Refs, Target};
use crate::error::CliError;
use crate::listen::listen;
use crate::profile::{Profile, ProfileStore};
use crate::users::resolve;
use crate::{Cli, Command, DEFAULT_SERVER};
use magpie_core::{ConvId, DeviceId, Message};
use magpie_proto::http::{SendRequest, SendResult};
use magpie_sdk::{HistoryQuery, HttpClient, SdkError};
use serde::Serialize;
use std::time::Duration;

/// Attempts for a one-shot HTTP send; retries reuse the client message id, so
/// they cannot create a second copy.
const SEND_ATTEMPTS: u32 = 3;

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let dir = cli
        .config_dir
        .clone()
        .or_else(ProfileStore::default_dir)
        .ok_or_else(|| {
            CliError::usage("no config directory: pass --config-dir or set MAGPIE_CLI_DIR")
        })?;
    let store = ProfileStore::new(dir);
    let out = Out { json: cli.json };
    match cli.command {
        Command::Register { username, password } => {
            let http = HttpClient::new(cli.server.as_deref().unwrap_or(DEFAULT_SERVER))?;
            let u = http.register(&username, &password).await?;
            out.value(&u, || {
                format!("registered {} as user {}", u.username, u.user_id)
            });
            Ok(())
        }
        Command::Login {
            username,
            password,
            device,
        } => {
            let server = cli.server.as_deref().unwrap_or(DEFAULT_SERVER);
            let device = device
                .map(DeviceId::new)
                .transpose()
                .map_err(|e| CliError::usage(e.to_string()))?;
            let http = HttpClient::new(server)?;
            let tokens = http.login(&username, &password, device).await?;
            let profile = Profile::from_login(server, &username, tokens);
            store.save(&cli.profile, &profile)?;
            let text = format!(
                "logged in as {} (user {}, device {}); saved profile {:?}",
                profile.username, profile.user_id, profile.device, cli.profile
            );
            let summary = serde_json::json!({
                "profile": cli.profile, "username": profile.username,
                "user_id": profile.user_id, "device": profile.device,
            });
            out.value(&summary, || text);
            Ok(())
        }
        command => {
            let mut profile = store.load(&cli.profile)?;
            let server = cli.server.clone().unwrap_or_else(|| profile.server.clone());
            let http = HttpClient::new(&server)?;
            http.set_tokens(profile.tokens());
            let before = profile.clone();
            let result = authed(command, &http, &mut profile, out).await;
            // Save even when the command failed: a refresh may have consumed the
            // old (single-use) refresh token, and losing the new one logs us out.
            if let Some(t) = http.tokens() {
                profile.update_tokens(&t);
            }
            if profile != before {
                store.save(&cli.profile, &profile)?;
            }
            result
        }
    }
}

async fn authed(
    command: Command,
    http: &HttpClient,
    profile: &mut Profile,
    out: Out,
) -> Result<(), CliError> {
    let me = profile.user_id;
    match command {
        Command::Send { to, text, reply_to } => {
            let target = Target::resolve(http, &to).await?;
            let refs = Refs {
                reply_to,
                ..Refs::default()
            };
            crate::chat::send(http, &target, text.join(" "), refs, out).await?
        }
        Command::Edit { to, seq, text } => {
            let target = Target::resolve(http, &to).await?;
            let refs = Refs {
                edit: Some(seq),
                ..Refs::default()
            };
            crate::chat::send(http, &target, text.join(" "), refs, out).await?
        }
        Command::Recall { to, seq } => {
            let target = Target::resolve(http, &to).await?;
            let refs = Refs {
                recall: Some(seq),
                ..Refs::default()
            };
            crate::chat::send(http, &target, String::new(), refs, out).await?
        }
        Command::Mute { to, off } => {
            let conv = Target::resolve(http, &to).await?.conv(me);
            let r = http.mute(&conv, !off).await?;
            let what = if r.muted { "muted" } else { "unmuted" };
            out.value(&r, || format!("{what} {conv}"));
        }
        Command::Group { command } => crate::groups::run(http, command, out).await?,
        Command::Room {
            name,
            say,
            count,
            timeout_secs,
        } => crate::rooms::room(http, &name, say, count, timeout_secs, out).await?,
        Command::Listen {
            transport,
            count,
            timeout_secs,
        } => {
            listen(
                http,
                profile,
                transport.map(Into::into),
                count,
                timeout_secs,
                out,
            )
            .await?;
        }
        Command::History {
            peer,
            before,
            limit,
        } => {
            let conv = Target::resolve(http, &peer).await?.conv(me);
            history(http, conv, before, limit, out).await?
        }
        Command::Unread => unread(http, out).await?,
        Command::Read { peer, seq } => {
            let conv = Target::resolve(http, &peer).await?.conv(me);
            let r = http.read(&conv, seq).await?;
            out.value(&r, || format!("read {} up to #{}", r.conv, r.seq));
        }
        Command::Follow { user } => {
            let user = resolve(http, &user).await?;
            crate::feeds::follow(http, user, true, out).await?
        }
        Command::Unfollow { user } => {
            let user = resolve(http, &user).await?;
            crate::feeds::follow(http, user, false, out).await?
        }
        Command::Whois { user } => crate::users::whois(http, &user, out).await?,
        Command::SetProfile { name, avatar } => {
            let p = http.set_profile(&name, &avatar).await?;
            out.value(&p, || crate::users::describe(&p));
        }
        Command::Post { text } => crate::feeds::post(http, &text.join(" "), out).await?,
        Command::Feed { before, limit } => crate::feeds::feed(http, before, limit, out).await?,
        Command::Search {
            text,
            from,
            relevance,
            cursor,
            limit,
        } => {
            let s = crate::search::Search {
                text: text.join(" "),
                from,
                relevance,
                cursor,
                limit,
            };
            crate::search::search(http, s, out).await?
        }
        Command::Register { .. } | Command::Login { .. } => {
            unreachable!("handled without a profile")
        }
    }
    Ok(())
}

/// One page of a conversation, oldest first.
async fn history(
    http: &HttpClient,
    conv: ConvId,
    before: Option<i64>,
    limit: Option<usize>,
    out: Out,
) -> Result<(), CliError> {
    let query = HistoryQuery {
        before,
        after: None,
        limit,
    };
    let page = http.history(&conv, query).await?;
    out.value(&page, || {
        // Oldest first reads naturally in a terminal.
        let mut lines: Vec<String> = page.messages.iter().rev().map(message_line).collect();
        if page.more {
            let oldest = page.messages.last().map_or(0, |m| m.seq);
            lines.insert(0, format!("(older messages: --before {oldest})"));
        }
        if lines.is_empty() {
            lines.push(format!("no messages in {conv}"));
        }
        lines.join("\n")
    });
    Ok(())
}

/// The unread counts, in total and per conversation.
async fn unread(http: &HttpClient, out: Out) -> Result<(), CliError> {
    let u = http.unread().await?;
    out.value(&u, || {
        let mut lines = vec![format!("total unread: {}", u.total)];
        for c in &u.convs {
            let mentions = match c.mentions {
                0 => String::new(),
                1 => " (1 mention)".to_string(),
                n => format!(" ({n} mentions)"),
            };
            let muted = if c.muted { ", muted" } else { "" };
            lines.push(format!(
                "  {} (user {}): {} unread{mentions}, last #{}, read #{}{muted}",
                c.conv, c.peer, c.unread, c.last_seq, c.read_seq
            ));
        }
        lines.join("\n")
    });
    Ok(())
}

pub(crate) async fn send_with_retry(
    http: &HttpClient,
    req: &SendRequest,
) -> Result<SendResult, SdkError> {
    let mut backoff = magpie_sdk::Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    let mut attempt = 1;
    loop {
        match http.send(req).await {
            Err(e) if e.is_retryable() && attempt < SEND_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(backoff.next_delay()).await;
            }
            other => return other,
        }
    }
}

/// `[d:1:2 #5] 1: hello`, with what it refers to or what happened to it:
/// `(reply to #2)`, `(edits #3)`, `(recalls #4)`, `(edited)`, `(recalled)`.
pub(crate) fn message_line(m: &Message) -> String {
    let mut line = format!("[{} #{}] {}: {}", m.conv, m.seq, m.from, m.body);
    let Some(meta) = m.meta.as_deref() else {
        return line;
    };
    let notes = [
        meta.reply_to.map(|s| format!("(reply to #{s})")),
        meta.edit_of.map(|s| format!("(edits #{s})")),
        meta.recall_of.map(|s| format!("(recalls #{s})")),
        meta.edited_at.map(|_| "(edited)".to_string()),
        meta.recalled.then(|| "(recalled)".to_string()),
    ];
    for n in notes.into_iter().flatten() {
        line.push(' ');
        line.push_str(&n);
    }
    line
}

/// Output mode: results on stdout (JSON lines or text); notes on stderr so
/// stdout stays machine-readable.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    pub(crate) json: bool,
}

impl Out {
    pub(crate) fn value<T: Serialize>(&self, v: &T, text: impl FnOnce() -> String) {
        if self.json {
            match serde_json::to_string(v) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("error: internal: {e}"),
            }
        } else {
            println!("{}", text());
        }
    }

    pub(crate) fn note(&self, text: &str) {
        eprintln!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magpie_core::{ClientMsgId, Persistence, ServerMsgId, UserId};

    #[test]
    fn message_lines_are_readable() {
        let m = Message {
            meta: None,
            trace: None,
            server_id: ServerMsgId(1),
            conv: ConvId::direct(UserId(2), UserId(1)),
            seq: 5,
            from: UserId(1),
            to: UserId(2),
            cmid: ClientMsgId::new_v7(),
            body: "hello".into(),
            persistence: Persistence::Forever,
            sent_at: 0,
            search: false,
        };
        assert_eq!(message_line(&m), "[d:1:2 #5] 1: hello");
    }
}
