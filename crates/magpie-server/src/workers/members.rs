//! The membership consumer every connection node runs (its own group on
//! the durable topic `members`): joins and leaves keep this node's group
//! index current, so a super-group broadcast reaches the members connected
//! here (`services/delivery/group_index.rs`). Durable, unlike the
//! broadcasts themselves: a lost membership change would leave the index
//! wrong until the user reconnects.

use super::Worker;
use crate::app::App;
use crate::error::Result;
use async_trait::async_trait;
use magpie_core::{BusEvent, MEMBERS_TOPIC};

pub struct Members {
    node: String,
}

impl Members {
    pub fn for_node(node: &str) -> Self {
        Members {
            node: node.to_string(),
        }
    }
}

#[async_trait]
impl Worker for Members {
    fn group(&self) -> String {
        format!("members-{}", self.node)
    }
    fn topics(&self) -> Vec<String> {
        vec![MEMBERS_TOPIC.to_string()]
    }
    async fn apply(&self, app: &App, events: &[BusEvent]) -> Result<()> {
        app.delivery.arrive_members(events).await;
        Ok(())
    }
}
