-- A broadcast to one of many channels dirtied two random pages besides
-- the log's own: its channel's last page of messages, and of the index of
-- events by channel. Both are keyed by channel, and the first already
-- holds what the second did: a retained message's row has its broadcast's
-- seq. So the index by channel now leaves out the broadcasts, the only
-- events with an offset, and a channel's broadcasts are found by its
-- messages (BENCHMARKS.md, stop 28).
--
-- Retention deletes messages but keeps their broadcasts' events until the
-- audit retention drops them. Before it deletes a range of a channel's
-- messages, it records their broadcasts here, in the same transaction:
-- rows of one channel in a row, which cost a trim a page or two, not a
-- broadcast a random one. The audit retention deletes a row here with its
-- event.
CREATE TABLE trimmed_broadcasts (
    app     TEXT    NOT NULL,
    channel TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (app, channel, seq)
) WITHOUT ROWID;

-- The broadcasts that retention had already trimmed, channel by channel
-- through the index as it was: retention trims a channel's oldest
-- messages first, so they are the broadcasts before its first retained
-- message, or all of them when none is. (Testing each broadcast for its
-- message instead took four to five times as long on a file of
-- 6,000,000.)
INSERT INTO trimmed_broadcasts (app, channel, seq)
SELECT e.app, e.channel, e.seq
FROM channels c CROSS JOIN events e INDEXED BY events_app_channel
WHERE e.app = c.app AND e.channel = c.name AND e.channel <> ''
  AND e."offset" IS NOT NULL
  AND e.seq < COALESCE((SELECT m.seq FROM messages m WHERE m.app = c.app AND m.channel = c.name ORDER BY m."offset" LIMIT 1),
                       9223372036854775807);

-- Builds of 27 November 2026 could trim a later range of a channel while
-- holding back an earlier message, which left a gap in its offsets. In a
-- channel with one (fewer retained messages than its retained range
-- spans), each broadcast after the first retained message is tested for
-- its message.
INSERT INTO trimmed_broadcasts (app, channel, seq)
SELECT e.app, e.channel, e.seq
FROM channels c CROSS JOIN events e INDEXED BY events_app_channel
WHERE (SELECT MAX(m."offset") FROM messages m WHERE m.app = c.app AND m.channel = c.name)
      - (SELECT MIN(m."offset") FROM messages m WHERE m.app = c.app AND m.channel = c.name) + 1
      > (SELECT COUNT(*) FROM messages m WHERE m.app = c.app AND m.channel = c.name)
  AND e.app = c.app AND e.channel = c.name AND e.channel <> ''
  AND e."offset" IS NOT NULL
  AND e.seq > (SELECT m.seq FROM messages m WHERE m.app = c.app AND m.channel = c.name ORDER BY m."offset" LIMIT 1)
  AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.app = e.app AND m.channel = e.channel AND m."offset" = e."offset");

DROP INDEX events_app_channel;
CREATE INDEX events_app_channel ON events (app, channel, seq) WHERE channel <> '' AND "offset" IS NULL;
