-- Which shard of a sharded store this database is (docs/deploy.md, "SQL
-- shards"): one row, written when the store first opens it, refused when a
-- later configuration names another place in the shard map. A database
-- from before sharding gets (1, 0): one shard, the first.
CREATE TABLE IF NOT EXISTS shard_map (
    id     INT    NOT NULL PRIMARY KEY,
    shards BIGINT NOT NULL,
    shard  BIGINT NOT NULL);
