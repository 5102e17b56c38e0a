-- Profiles (docs/protocol.md §3.18): what a user shows of themselves, apart
-- from the account row (which holds what authenticates). '' for unset.
CREATE TABLE IF NOT EXISTS user_profile (
    user_id      BIGINT PRIMARY KEY,
    display_name TEXT   NOT NULL,
    avatar_url   TEXT   NOT NULL,
    updated_at   BIGINT NOT NULL);
