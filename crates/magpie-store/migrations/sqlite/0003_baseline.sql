-- The schema of an embedded (SQLite) Magpie store, layout version 3: client
-- message ids as 16-byte blobs, one row per message (no inbox/outbox rows:
-- a direct message's parties are in its conversation id), groups. Every
-- statement is IF NOT EXISTS, so a version 3 file written before migrations
-- were versioned is adopted as it is.
CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    device     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    user_id INTEGER NOT NULL,
    device  TEXT    NOT NULL,
    json    TEXT    NOT NULL,
    PRIMARY KEY (user_id, device)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conversations (
    conv     TEXT    PRIMARY KEY,
    last_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS im_msg_content (
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
    UNIQUE (from_uid, cmid)
);
CREATE INDEX IF NOT EXISTS im_msg_content_expire
    ON im_msg_content (expire_at) WHERE expire_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS user_conv (
    owner_uid INTEGER NOT NULL,
    conv      TEXT    NOT NULL,
    peer_uid  INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    read_seq  INTEGER NOT NULL,
    PRIMARY KEY (owner_uid, conv)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS im_group (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    owner_uid  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    members    INTEGER NOT NULL,
    history    INTEGER NOT NULL,
    dissolved  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS im_group_member (
    group_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    role       TEXT    NOT NULL,
    muted      INTEGER NOT NULL,
    joined_seq INTEGER NOT NULL,
    read_seq   INTEGER NOT NULL,
    joined_at  INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS im_group_member_user ON im_group_member (user_id, group_id);
CREATE INDEX IF NOT EXISTS im_group_member_read ON im_group_member (group_id, read_seq);
