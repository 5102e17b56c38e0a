-- Refresh-token families (docs/protocol.md §3.1, "Refresh"): every token
-- rotated from one login shares its family; a used token stays, marked,
-- until it expires, so a replay is recognised and revokes the family.
ALTER TABLE refresh_tokens
    ADD COLUMN family VARCHAR(64) NOT NULL DEFAULT '',
    ADD COLUMN used BOOLEAN NOT NULL DEFAULT FALSE,
    ADD INDEX refresh_tokens_family (family);
