//! A SQL database's place in the shard map (`shards::map`), recorded in its
//! `shard_map` row and enforced on every open, and the strided identity
//! columns that make an id name its shard.
//!
//! Shard `k` of `n` generates user and group ids `k+1, k+1+n, …`. On
//! PostgreSQL the identity columns are altered once, when the database
//! becomes a shard (empty: no id handed out yet); MySQL's stride is a
//! session setting (`auto_increment_increment`/`_offset`), set on every
//! pooled connection (`pool`). A database keeps its place for life: a map
//! that names it elsewhere, or with another length, is refused, since ids
//! and conversations already on it would be routed to other shards.

use super::db::{Exec, args};
use super::dialect::Dialect;
use super::store_err;
use crate::error::{Result, StoreError};
use crate::shards::Place;

const GET: &str = "SELECT shards, shard FROM shard_map WHERE id = 1";

/// Under the migration lock, after the migrations.
pub(crate) async fn settle(x: &mut Exec<'_>, d: Dialect, place: Place) -> Result<()> {
    let stored: Option<(i64, i64)> = x.optional(GET, args![]).await.map_err(store_err)?;
    let wanted = (i64::from(place.shards), i64::from(place.shard));
    match stored {
        Some(got) if got == wanted => return Ok(()),
        Some((n, k)) => {
            return Err(StoreError::Config(format!(
                "this database is shard {k} of {n}, but the store's shard map puts it at {} of {}: \
                 a shard map's order and length are fixed when its databases are first opened",
                place.shard, place.shards
            )));
        }
        None => {}
    }
    if place.shards > 1 {
        for table in ["users", "im_group"] {
            let any: Option<(i64,)> = x
                .optional(format!("SELECT id FROM {table} LIMIT 1"), args![])
                .await
                .map_err(store_err)?;
            if any.is_some() {
                return Err(StoreError::Config(format!(
                    "shard {} of {}: the database already holds {table}; only an empty \
                     database can become a shard (ids would collide across shards)",
                    place.shard, place.shards
                )));
            }
            if d == Dialect::Postgres {
                let stride = format!(
                    "ALTER TABLE {table} ALTER COLUMN id SET INCREMENT BY {} RESTART WITH {}",
                    place.shards,
                    place.shard + 1
                );
                x.execute(stride, args![]).await.map_err(store_err)?;
            }
        }
    }
    let set = d.finish("INSERT INTO shard_map (id, shards, shard) VALUES (1, ?, ?)");
    x.execute(set, args![wanted.0, wanted.1])
        .await
        .map_err(store_err)?;
    Ok(())
}

/// The MySQL session statement that strides a connection's generated ids,
/// if the place needs one.
pub(crate) fn mysql_stride(place: Place) -> Option<String> {
    (place.shards > 1).then(|| {
        format!(
            "SET SESSION auto_increment_increment = {}, auto_increment_offset = {}",
            place.shards,
            place.shard + 1
        )
    })
}
