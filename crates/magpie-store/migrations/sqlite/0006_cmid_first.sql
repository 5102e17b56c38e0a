-- The idempotency key of a message, unique (from_uid, cmid), becomes
-- unique (cmid, from_uid): the same constraint, ordered by the client id
-- first. Client ids are time-ordered (UUIDv7, docs/protocol.md), so a
-- batch's new keys land at the right edge of the index, a page or two,
-- instead of one page per sender: the commit writes far fewer pages
-- (docs/performance.md, "The idempotency key's order"). SQLite cannot
-- reorder a table constraint in place; the table is rebuilt, keeping
-- every row and its server id.
CREATE TABLE im_msg_content_v6 (
    server_id   INTEGER PRIMARY KEY,
    conv        TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    from_uid    INTEGER NOT NULL,
    to_uid      INTEGER NOT NULL,
    cmid        BLOB    NOT NULL,
    body        TEXT    NOT NULL,
    persistence TEXT    NOT NULL,
    sent_at     INTEGER NOT NULL,
    expire_at   INTEGER,
    UNIQUE (conv, seq),
    UNIQUE (cmid, from_uid)
);
INSERT INTO im_msg_content_v6
    (server_id, conv, seq, from_uid, to_uid, cmid, body, persistence, sent_at, expire_at)
    SELECT server_id, conv, seq, from_uid, to_uid, cmid, body, persistence, sent_at, expire_at
    FROM im_msg_content ORDER BY server_id;
DROP TABLE im_msg_content;
ALTER TABLE im_msg_content_v6 RENAME TO im_msg_content;
CREATE INDEX IF NOT EXISTS im_msg_content_expire
    ON im_msg_content (expire_at) WHERE expire_at IS NOT NULL;
