-- Replies, edits and recalls (docs/protocol.md §5.10): what a message refers
-- to (`meta`, JSON, NULL for a plain message) and what happened to it since
-- (`revised`: 0 original, > 0 edited at that time in ms, -1 recalled).
ALTER TABLE im_msg_content ADD COLUMN meta TEXT;
ALTER TABLE im_msg_content ADD COLUMN revised INTEGER NOT NULL DEFAULT 0;
