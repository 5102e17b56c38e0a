-- Profiles (docs/protocol.md §3.18): what a user shows of themselves, apart
-- from the account row (which holds what authenticates). '' for unset.
CREATE TABLE IF NOT EXISTS user_profile (
    user_id      BIGINT        NOT NULL PRIMARY KEY,
    display_name VARCHAR(256)  NOT NULL,
    avatar_url   VARCHAR(1024) NOT NULL,
    updated_at   BIGINT        NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
