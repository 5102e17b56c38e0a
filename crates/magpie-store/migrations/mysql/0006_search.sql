-- Message search (docs/search.md): whether a message may be indexed, its
-- sender's `search` setting when it was accepted, so an index rebuilt from
-- the store decides as the live one did. Rows stored before the setting was
-- recorded are not indexed.
ALTER TABLE im_msg_content ADD COLUMN searchable SMALLINT NOT NULL DEFAULT 0;
