-- Follow feeds (docs/feeds.md). A follow is two half-edges, one per side,
-- so each lives with its user on a sharded SQL store and every read is an
-- index range: `follow_out` (whom a user follows, read by each feed read),
-- `follow_in` (who follows a user, paged by the fan-out). The counts are
-- kept in the transaction of each half-edge. A post lives in its author's
-- outbox, unique per (author, cmid) like a message; deletion keeps the row
-- without its body so a retry still answers with it.
CREATE TABLE IF NOT EXISTS follow_out (
    follower   INTEGER NOT NULL,
    followee   INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (follower, followee)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS follow_in (
    followee   INTEGER NOT NULL,
    follower   INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (followee, follower)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS follow_counts (
    user_id   INTEGER PRIMARY KEY,
    followers INTEGER NOT NULL DEFAULT 0,
    following INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS blocks (
    blocker    INTEGER NOT NULL,
    blocked    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (blocker, blocked)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS posts (
    id         INTEGER PRIMARY KEY,
    author     INTEGER NOT NULL,
    cmid       BLOB    NOT NULL,
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (author, cmid)
);
CREATE INDEX IF NOT EXISTS posts_author ON posts (author, id);
