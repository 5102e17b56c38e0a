-- Mentions and conversation mute (docs/protocol.md §5.11). A mention is one
-- row per mentioned user of a group message (user_id 0: `@all`), so a
-- member's mention count is an index range counted from their read
-- position, exact like unread. `notify_muted` is a member's own mute of a
-- conversation's notifications (not the moderation `muted` of a group
-- member, which stops sending).
CREATE TABLE IF NOT EXISTS im_mention (
    conv      TEXT COLLATE "C" NOT NULL,
    seq       BIGINT NOT NULL,
    user_id   BIGINT NOT NULL,
    from_uid  BIGINT NOT NULL,
    expire_at BIGINT,
    PRIMARY KEY (conv, seq, user_id));
CREATE INDEX IF NOT EXISTS im_mention_expire ON im_mention (expire_at) WHERE expire_at IS NOT NULL;
ALTER TABLE user_conv ADD COLUMN IF NOT EXISTS notify_muted BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE im_group_member ADD COLUMN IF NOT EXISTS notify_muted BOOLEAN NOT NULL DEFAULT FALSE;
