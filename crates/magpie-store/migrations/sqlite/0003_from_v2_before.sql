-- Version 2 -> 3, before 0003_baseline.sql: the v2 message table steps
-- aside (its client message ids are text; 0003_from_v2_after.sql copies
-- them over as their 16 bytes) and the inbox/outbox rows go (a direct
-- message's parties are in its conversation id; visibility and unread
-- counts read the message rows themselves).
ALTER TABLE im_msg_content RENAME TO im_msg_content_v2;
DROP INDEX IF EXISTS im_msg_content_expire;
DROP TABLE IF EXISTS im_user_msg_box;
