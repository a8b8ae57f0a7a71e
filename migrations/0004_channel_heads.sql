-- A broadcast no longer writes its channel's head: the UPDATE of the
-- channels row dirtied a random page per broadcast, a quarter of what a
-- commit to many channels wrote (BENCHMARKS.md, stop 26). Every offset a
-- broadcast is given has its row in messages until retention deletes it,
-- so a channel's head is the larger of channels.head and the newest
-- offset in messages: channels.head is set when the channel is created
-- and raised by retention to the last offset it deletes, in the same
-- transaction. Readers take heads from this view.
--
-- A fazt built before this migration reads channels.head alone: on this
-- file it would hand out offsets that are taken, and its publishes to a
-- channel with newer messages would fail on the messages key.
CREATE VIEW channel_heads AS
SELECT c.app, c.name, c.epoch, c.created,
       MAX(c.head, COALESCE((SELECT MAX(m."offset") FROM messages m
                             WHERE m.app = c.app AND m.channel = c.name), 0)) AS head
FROM channels c;
