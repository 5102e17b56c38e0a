-- Follow feeds (docs/feeds.md). A follow is two half-edges, one per side,
-- so each lives with its user on a sharded store and every read is an
-- index range: `follow_out` (whom a user follows, read by each feed read),
-- `follow_in` (who follows a user, paged by the fan-out). The counts are
-- kept in the transaction of each half-edge. A post lives in its author's
-- outbox, unique per (author, cmid) like a message; deletion keeps the row
-- without its body so a retry still answers with it.
CREATE TABLE IF NOT EXISTS follow_out (
    follower   BIGINT NOT NULL,
    followee   BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (follower, followee));
CREATE TABLE IF NOT EXISTS follow_in (
    followee   BIGINT NOT NULL,
    follower   BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (followee, follower));
CREATE TABLE IF NOT EXISTS follow_counts (
    user_id   BIGINT NOT NULL PRIMARY KEY,
    followers BIGINT NOT NULL DEFAULT 0,
    following BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS blocks (
    blocker    BIGINT NOT NULL,
    blocked    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (blocker, blocked));
CREATE TABLE IF NOT EXISTS posts (
    id         BIGINT  NOT NULL PRIMARY KEY,
    author     BIGINT  NOT NULL,
    cmid       TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (author, cmid));
CREATE INDEX IF NOT EXISTS posts_author ON posts (author, id);
