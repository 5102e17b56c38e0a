//! Presence fan-out: tells the online devices of everyone a user has a
//! conversation with that one of the user's devices came or went.

use super::Worker;
use crate::app::App;
use crate::error::Result;
use async_trait::async_trait;
use magpie_core::BusEvent;
use magpie_proto::ServerFrame;

pub struct PresenceFanout;

#[async_trait]
impl Worker for PresenceFanout {
    fn group(&self) -> String {
        "presence".into()
    }
    fn topics(&self) -> Vec<String> {
        ["presence"].map(String::from).to_vec()
    }
    async fn apply(&self, app: &App, events: &[BusEvent]) -> Result<()> {
        for ev in events {
            let BusEvent::Presence(p) = ev else { continue };
            let frame = ServerFrame::Presence {
                user: p.user,
                device: p.device.clone(),
                online: p.online,
                reason: p.reason.clone(),
            };
            for c in app.store.messages().conversations(p.user).await? {
                if c.peer != p.user {
                    app.push_frame(c.peer, frame.clone()).await;
                }
            }
        }
        Ok(())
    }
}
