//! Owns `listen`: a socket session that prints each incoming message (one
//! JSON line with --json) until Ctrl-C, a message count or a deadline, and
//! remembers in the profile how far it got.

use crate::commands::{Out, message_line};
use crate::error::CliError;
use crate::profile::Profile;
use magpie_sdk::{Client, ClientOptions, Event, HttpClient, SdkError};
use std::time::Duration;

/// Prints incoming messages until Ctrl-C, `count` messages or `timeout_secs`.
/// Starts from where the last `listen` of this profile stopped.
pub(crate) async fn listen(
    http: &HttpClient,
    profile: &mut Profile,
    transport: Option<magpie_core::Transport>,
    count: Option<u64>,
    timeout_secs: Option<u64>,
    out: Out,
) -> Result<(), CliError> {
    let deadline = timeout_secs.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let client = connect(http, profile, transport, deadline).await?;
    let welcome = client.welcome();
    out.note(&format!(
        "listening as user {} on node {} (Ctrl-C to stop)",
        welcome.user, welcome.node
    ));
    let result = print_events(&client, profile, count, deadline, out).await;
    let _ = client.close().await;
    result
}

/// A session resuming from the profile's positions, connected by `deadline`.
async fn connect(
    http: &HttpClient,
    profile: &Profile,
    transport: Option<magpie_core::Transport>,
    deadline: Option<tokio::time::Instant>,
) -> Result<Client, CliError> {
    let opts = ClientOptions {
        positions: profile.positions.clone(),
        ..ClientOptions::default()
    };
    let connect = Client::connect_http(http.clone(), transport, opts);
    Ok(match deadline {
        Some(d) => tokio::time::timeout_at(d, connect)
            .await
            .map_err(|_| SdkError::Timeout)??,
        None => connect.await?,
    })
}

/// Prints events until Ctrl-C, the deadline, `count` messages or the end of
/// the session (an error).
async fn print_events(
    client: &Client,
    profile: &mut Profile,
    count: Option<u64>,
    deadline: Option<tokio::time::Instant>,
    out: Out,
) -> Result<(), CliError> {
    let mut seen = 0u64;
    // Created once: a Ctrl-C between two events must not be missed.
    let ctrl_c = tokio::signal::ctrl_c();
    let until_deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(ctrl_c, until_deadline);
    while count.is_none_or(|n| seen < n) {
        let event = tokio::select! {
            ev = client.next_event() => ev,
            _ = &mut ctrl_c => return Ok(()),
            _ = &mut until_deadline => return Ok(()),
        };
        match event {
            Some(Event::Message(m)) => {
                out.value(&m, || message_line(&m));
                // Printed means seen: next run resumes after it.
                let pos = profile.positions.entry(m.conv.clone()).or_default();
                *pos = (*pos).max(m.seq);
                seen += 1;
            }
            Some(Event::Closed { code, reason }) => {
                let code = code.map_or("closed", |c| c.as_str());
                return Err(CliError::new(code, reason));
            }
            Some(other) => out.note(&note(other)),
            None => return Err(SdkError::Closed.into()),
        }
    }
    Ok(())
}

/// The line printed for an event that is neither a message nor the end.
fn note(event: Event) -> String {
    match event {
        Event::Receipt { conv, reader, seq } => format!("[{conv}] user {reader} read up to #{seq}"),
        Event::Delivered {
            conv,
            receiver,
            seq,
        } => format!("[{conv}] delivered to user {receiver} up to #{seq}"),
        Event::GroupReceipt {
            conv,
            seq,
            read,
            unread,
        } => format!("[{conv}] #{seq} read by {read}, not yet by {unread}"),
        Event::Presence {
            user,
            device,
            online,
            ..
        } => format!(
            "user {user} ({device}) is {}",
            if online { "online" } else { "offline" }
        ),
        Event::Reconnecting { reason, after } => format!("reconnecting in {after:?}: {reason}"),
        Event::Resynced => "in sync".into(),
        Event::Unavailable { conv, from, to } => {
            format!("[{conv}] messages #{from}..#{to} are no longer available")
        }
        Event::Message(m) => message_line(&m),
        Event::Post(p) => format!("new post {} by user {}: {}", p.id, p.author, p.body),
        Event::Room(m) => crate::rooms::line(&m),
        Event::Typing {
            conv, user, active, ..
        } => format!(
            "[{conv}] user {user} {}",
            if active {
                "is typing"
            } else {
                "stopped typing"
            }
        ),
        Event::ReadSync { conv, seq } => format!("[{conv}] read up to #{seq} on another device"),
        Event::Closed { reason, .. } => reason,
    }
}
