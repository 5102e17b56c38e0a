//! Presence fan-out: tells the online devices of everyone a user has a
//! conversation with that one of the user's devices came or went.

use super::Worker;
use crate::app::App;
use crate::error::Result;
use async_trait::async_trait;
use magpie_core::BusEvent;

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
            if let BusEvent::Presence(p) = ev {
                app.presence.fan_out(p).await?;
            }
        }
        Ok(())
    }
}
