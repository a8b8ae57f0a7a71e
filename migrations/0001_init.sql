-- The event log: every fact, in commit order. seq is the global sequence.
-- payload is the fact's JSON; a broadcast's data lives in messages.
CREATE TABLE events (
    seq      INTEGER PRIMARY KEY,
    uuid     TEXT    NOT NULL,
    name     TEXT    NOT NULL,
    app      TEXT    NOT NULL,
    channel  TEXT    NOT NULL DEFAULT '',
    client   TEXT    NOT NULL DEFAULT '',
    "offset" INTEGER,
    ts       INTEGER NOT NULL,
    payload  BLOB    NOT NULL
);
CREATE INDEX events_app_seq     ON events (app, seq);
CREATE INDEX events_app_name    ON events (app, name, seq);
CREATE INDEX events_app_channel ON events (app, channel, seq) WHERE channel <> '';
CREATE INDEX events_app_client  ON events (app, client, seq) WHERE client <> '';
CREATE INDEX events_ts          ON events (ts);

-- Retained message payloads, clustered by channel and offset so that a
-- replay is one sequential read. Retention deletes rows here; the events
-- that record the broadcasts stay.
CREATE TABLE messages (
    app      TEXT    NOT NULL,
    channel  TEXT    NOT NULL,
    "offset" INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    ts       INTEGER NOT NULL,
    data     BLOB    NOT NULL,
    PRIMARY KEY (app, channel, "offset")
) WITHOUT ROWID;
CREATE INDEX messages_ts ON messages (app, channel, ts);

-- Channel heads: the offset counter of each channel's history stream. The
-- log's writer keeps it in the same transaction as the events.
CREATE TABLE channels (
    app     TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    epoch   TEXT    NOT NULL,
    head    INTEGER NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (app, name)
) WITHOUT ROWID;

-- Server settings such as the admin key.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
