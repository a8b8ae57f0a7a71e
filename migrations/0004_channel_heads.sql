-- A broadcast no longer writes its channel's head: the UPDATE of the
-- channels row dirtied one of the three random pages a broadcast to one
-- of many channels dirtied (BENCHMARKS.md, stop 26). Every offset a
-- broadcast is given has its row in messages until retention deletes it,
-- so a channel's head is the larger of the row's head_floor and the
-- newest offset in messages. head_floor is the head when the channel was
-- created; retention raises it to the end of each range of offsets it
-- trims, in the same transaction, before it deletes them. Readers take
-- heads from this view.
--
-- The column is renamed so that a fazt built before this migration, which
-- would take the row's value for the head and hand out offsets again once
-- retention had deleted the messages above it, fails at start instead.
ALTER TABLE channels RENAME COLUMN head TO head_floor;

CREATE VIEW channel_heads AS
SELECT c.app, c.name, c.epoch, c.created,
       MAX(c.head_floor, COALESCE((SELECT MAX(newest."offset") FROM messages newest
                                   WHERE newest.app = c.app AND newest.channel = c.name), 0)) AS head
FROM channels c;
