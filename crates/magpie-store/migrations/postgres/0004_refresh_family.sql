-- Refresh-token families (docs/protocol.md §3.1, "Refresh"): every token
-- rotated from one login shares its family; a used token stays, marked,
-- until it expires, so a replay is recognised and revokes the family.
ALTER TABLE refresh_tokens ADD COLUMN IF NOT EXISTS family TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN IF NOT EXISTS used BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family);
