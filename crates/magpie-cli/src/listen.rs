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
    let opts = ClientOptions {
        positions: profile.positions.clone(),
        ..ClientOptions::default()
    };
    let connect = Client::connect_http(http.clone(), transport, opts);
    let client = match deadline {
        Some(d) => tokio::time::timeout_at(d, connect)
            .await
            .map_err(|_| SdkError::Timeout)??,
        None => connect.await?,
    };
    let welcome = client.welcome();
    out.note(&format!(
        "listening as user {} on node {} (Ctrl-C to stop)",
        welcome.user, welcome.node
    ));
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
    let result = loop {
        if count.is_some_and(|n| seen >= n) {
            break Ok(());
        }
        let event = tokio::select! {
            ev = client.next_event() => ev,
            _ = &mut ctrl_c => break Ok(()),
            _ = &mut until_deadline => break Ok(()),
        };
        match event {
            Some(Event::Message(m)) => {
                out.value(&m, || message_line(&m));
                // Printed means seen: next run resumes after it.
                let pos = profile.positions.entry(m.conv.clone()).or_default();
                *pos = (*pos).max(m.seq);
                seen += 1;
            }
            Some(Event::Receipt { conv, reader, seq }) => {
                out.note(&format!("[{conv}] user {reader} read up to #{seq}"))
            }
            Some(Event::GroupReceipt {
                conv,
                seq,
                read,
                unread,
            }) => out.note(&format!(
                "[{conv}] #{seq} read by {read}, not yet by {unread}"
            )),
            Some(Event::Presence {
                user,
                device,
                online,
                ..
            }) => {
                out.note(&format!(
                    "user {user} ({device}) is {}",
                    if online { "online" } else { "offline" }
                ));
            }
            Some(Event::Reconnecting { reason, after }) => {
                out.note(&format!("reconnecting in {after:?}: {reason}"))
            }
            Some(Event::Resynced) => out.note("in sync"),
            Some(Event::Unavailable { conv, from, to }) => {
                out.note(&format!(
                    "[{conv}] messages #{from}..#{to} are no longer available"
                ));
            }
            Some(Event::Closed { code, reason }) => {
                let code = code.map_or("closed", |c| c.as_str());
                break Err(CliError::new(code, reason));
            }
            None => break Err(SdkError::Closed.into()),
        }
    };
    let _ = client.close().await;
    result
}
