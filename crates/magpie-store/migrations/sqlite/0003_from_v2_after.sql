-- Version 2 -> 3, after 0003_baseline.sql created the new message table:
-- the messages come over with their client ids as 16 bytes.
INSERT INTO im_msg_content
    SELECT server_id, conv, seq, from_uid, to_uid, unhex(replace(cmid, '-', '')),
           body, persistence, sent_at, expire_at
    FROM im_msg_content_v2;
DROP TABLE im_msg_content_v2;
