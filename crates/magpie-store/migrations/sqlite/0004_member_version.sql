-- A group's membership version (docs/protocol.md, groups): bumped by every
-- join and leave, returned by `accept` so pushes may use a cached member
-- list that is at least as new.
ALTER TABLE im_group ADD COLUMN member_version INTEGER NOT NULL DEFAULT 0;
