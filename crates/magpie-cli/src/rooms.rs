//! Owns `room`: joins a live room (docs/protocol.md, "Live rooms"), says
//! something if asked, and prints the room's recent messages and what is
//! said in it until Ctrl-C, a message count or a deadline.

use crate::commands::Out;
use crate::error::CliError;
use magpie_core::RoomMessage;
use magpie_sdk::{Client, ClientOptions, Event, HttpClient, SdkError};
use std::time::Duration;

pub(crate) fn line(m: &RoomMessage) -> String {
    format!("[room {}] {}: {}", m.room, m.from, m.body)
}

/// Joins `room`, says `say` (if any), prints messages: the recent ones,
/// then live ones until `count` of those or `timeout_secs`.
pub(crate) async fn room(
    http: &HttpClient,
    room: &str,
    say: Option<String>,
    count: Option<u64>,
    timeout_secs: Option<u64>,
    out: Out,
) -> Result<(), CliError> {
    let deadline = timeout_secs.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let connect = Client::connect_http(http.clone(), None, ClientOptions::default());
    let client = match deadline {
        Some(d) => tokio::time::timeout_at(d, connect)
            .await
            .map_err(|_| SdkError::Timeout)??,
        None => connect.await?,
    };
    let result = run(&client, room, say, count, deadline, out).await;
    let _ = client.close().await;
    result
}

async fn run(
    client: &Client,
    room: &str,
    say: Option<String>,
    count: Option<u64>,
    deadline: Option<tokio::time::Instant>,
    out: Out,
) -> Result<(), CliError> {
    for m in client.join_room(room).await? {
        out.value(&m, || line(&m));
    }
    if let Some(body) = say {
        let sent = client.room_send(room, body).await?;
        if sent.shed {
            out.note("the room is over its rate: your message was dropped");
        }
    }
    let until = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(until, ctrl_c);
    let mut seen = 0;
    while count.is_none_or(|n| seen < n) {
        let event = tokio::select! {
            ev = client.next_event() => ev,
            _ = &mut ctrl_c => return Ok(()),
            _ = &mut until => return Ok(()),
        };
        match event {
            Some(Event::Room(m)) if m.room == room => {
                out.value(&m, || line(&m));
                seen += 1;
            }
            Some(Event::Closed { code, reason }) => {
                let code = code.map_or("closed", |c| c.as_str());
                return Err(CliError::new(code, reason));
            }
            None => return Ok(()),
            Some(_) => {}
        }
    }
    Ok(())
}
