-- A group's membership version (docs/protocol.md, groups): bumped by every
-- join and leave under the group row's lock, returned by `accept` so a node
-- may push from a cached member list that is at least as new.
ALTER TABLE im_group ADD COLUMN IF NOT EXISTS member_version BIGINT NOT NULL DEFAULT 0;
