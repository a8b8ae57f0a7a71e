-- Commit times never go backwards, so events are in time order by seq and
-- a channel's messages by offset: time bounds are found by binary search
-- over the primary keys (events/timesearch.go). The indexes on time cost a
-- B-tree insert per append (the one on messages a random page per
-- channel) and are no longer used.
DROP INDEX events_ts;
DROP INDEX messages_ts;
