-- Persisted projections and their checkpoints. A projection applies events
-- in sequence order and records, in the same transaction as its rows, the
-- sequence of the last event it applied; on start it resumes after it, and
-- `fazt rebuild` recomputes it from sequence 0 to check it.
CREATE TABLE projection_checkpoints (
    name    TEXT    PRIMARY KEY,
    seq     INTEGER NOT NULL,
    updated INTEGER NOT NULL
) WITHOUT ROWID;

-- subscriptions.v1: the open sessions and the subscriptions they hold, as
-- the log says. seq and ts are those of the event that opened the row.
CREATE TABLE sessions (
    app    TEXT    NOT NULL,
    client TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    ts     INTEGER NOT NULL,
    PRIMARY KEY (app, client)
) WITHOUT ROWID;

CREATE TABLE subscriptions (
    app     TEXT    NOT NULL,
    channel TEXT    NOT NULL,
    client  TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    ts      INTEGER NOT NULL,
    PRIMARY KEY (app, channel, client)
) WITHOUT ROWID;
CREATE INDEX subscriptions_client ON subscriptions (app, client);
