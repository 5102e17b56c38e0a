-- The schema of a Magpie store on MySQL/MariaDB (layout version 2: users,
-- messages, groups). Every statement is IF NOT EXISTS, so this also adopts
-- a database created before migrations were versioned. The two message
-- tables of a new database are hash-partitioned by the store right after
-- this migration (`PARTITION BY HASH … PARTITIONS n`, n chosen at creation).
-- Text that is compared or unique uses utf8mb4_bin, so usernames and
-- conversation ids compare and sort bytewise as in SQLite. Indexes are
-- declared inline because MySQL has no CREATE INDEX IF NOT EXISTS.

CREATE TABLE IF NOT EXISTS users (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    username      VARCHAR(255) NOT NULL UNIQUE,
    password_hash TEXT         NOT NULL,
    created_at    BIGINT       NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash VARCHAR(255) NOT NULL PRIMARY KEY,
    user_id    BIGINT       NOT NULL,
    device     VARCHAR(64)  NOT NULL,
    expires_at BIGINT       NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS settings (
    user_id BIGINT      NOT NULL,
    device  VARCHAR(64) NOT NULL,
    json    TEXT        NOT NULL,
    PRIMARY KEY (user_id, device)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS conversations (
    conv     VARCHAR(128) NOT NULL PRIMARY KEY,
    last_seq BIGINT       NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS im_msg_content (
    server_id   BIGINT       NOT NULL,
    conv        VARCHAR(128) NOT NULL,
    seq         BIGINT       NOT NULL,
    from_uid    BIGINT       NOT NULL,
    to_uid      BIGINT       NOT NULL,
    cmid        VARCHAR(64)  NOT NULL,
    body        MEDIUMTEXT   NOT NULL,
    persistence VARCHAR(32)  NOT NULL,
    sent_at     BIGINT       NOT NULL,
    expire_at   BIGINT,
    PRIMARY KEY (from_uid, server_id),
    UNIQUE KEY im_msg_content_cmid (from_uid, cmid),
    KEY im_msg_content_expire (expire_at),
    KEY im_msg_content_conv (conv, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS im_user_msg_box (
    owner_uid BIGINT       NOT NULL,
    other_uid BIGINT       NOT NULL,
    conv      VARCHAR(128) NOT NULL,
    seq       BIGINT       NOT NULL,
    server_id BIGINT       NOT NULL,
    box_type  BIGINT       NOT NULL,
    PRIMARY KEY (owner_uid, conv, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS user_conv (
    owner_uid BIGINT       NOT NULL,
    conv      VARCHAR(128) NOT NULL,
    peer_uid  BIGINT       NOT NULL,
    last_seq  BIGINT       NOT NULL,
    read_seq  BIGINT       NOT NULL,
    PRIMARY KEY (owner_uid, conv)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS im_group (
    id         BIGINT  NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name       TEXT    NOT NULL,
    owner_uid  BIGINT  NOT NULL,
    created_at BIGINT  NOT NULL,
    members    BIGINT  NOT NULL,
    history    BIGINT  NOT NULL,
    dissolved  BOOLEAN NOT NULL DEFAULT FALSE) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS im_group_member (
    group_id   BIGINT      NOT NULL,
    user_id    BIGINT      NOT NULL,
    role       VARCHAR(16) NOT NULL,
    muted      BOOLEAN     NOT NULL,
    joined_seq BIGINT      NOT NULL,
    read_seq   BIGINT      NOT NULL,
    joined_at  BIGINT      NOT NULL,
    PRIMARY KEY (group_id, user_id),
    KEY im_group_member_user (user_id, group_id),
    KEY im_group_member_read (group_id, read_seq)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
