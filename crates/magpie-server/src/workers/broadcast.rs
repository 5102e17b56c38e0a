//! The broadcast consumer every connection node runs (its own group on
//! topic `bcast`): super-group and room messages for the connections here,
//! membership changes for the local group index, all handed to the
//! delivery service (`services/delivery/arrive.rs`).

use super::Worker;
use crate::app::App;
use crate::error::Result;
use async_trait::async_trait;
use magpie_core::{BROADCAST_TOPIC, BusEvent};

pub struct Broadcast {
    node: String,
}

impl Broadcast {
    pub fn for_node(node: &str) -> Self {
        Broadcast {
            node: node.to_string(),
        }
    }
}

#[async_trait]
impl Worker for Broadcast {
    fn group(&self) -> String {
        format!("bcast-{}", self.node)
    }
    fn topics(&self) -> Vec<String> {
        vec![BROADCAST_TOPIC.to_string()]
    }
    async fn apply(&self, app: &App, events: &[BusEvent]) -> Result<()> {
        app.delivery.arrive_broadcast(events);
        Ok(())
    }
}
