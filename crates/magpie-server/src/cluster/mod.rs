//! Cluster membership: the service registry (each node's heartbeat record
//! in the fast state), placement of new connections
//! (least loaded, with a canary share), the sweeper that cleans up after
//! nodes that died, the drain a node performs on a planned shutdown or an
//! operator's word, and the survey of every node for the console.
//!
//! Invariant: all of it is derived state. A lost registry only means a
//! `connect` may pick this node and a late clean-up; no message depends on it.

pub mod drain;
pub mod gauges;
pub mod placement;
pub mod registry;
pub mod survey;
pub mod sweeper;
