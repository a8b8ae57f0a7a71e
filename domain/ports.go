package domain

import (
	"context"
	"encoding/json"
)

// Log is the durable event log. Append commits facts in one transaction and
// returns them as committed events, in order, with sequence numbers, commit
// time and (for MessageBroadcast) the channel offset and epoch filled in. It
// returns only after the commit is durable; on error nothing was committed.
// Implementations are safe for concurrent use.
type Log interface {
	Append(ctx context.Context, facts ...Fact) ([]Event, error)
}

// History reads what the log retains. Implementations are safe for
// concurrent use.
type History interface {
	// Channel returns a channel's head and retention state. A channel that
	// never had a message has Head 0 and an empty Epoch.
	Channel(ctx context.Context, app, channel string) (ChannelInfo, error)
	// Channels lists an app's channels that have had messages, by name:
	// at most limit of them, named after after (all names when after is
	// empty).
	Channels(ctx context.Context, app, after string, limit int) ([]ChannelInfo, error)
	// Messages reads retained messages of a channel.
	Messages(ctx context.Context, app, channel string, q HistoryQuery) ([]Message, error)
	// ChannelHistory returns what Channel does and, unless none, what
	// Messages does, read in one snapshot, so that they agree.
	ChannelHistory(ctx context.Context, app, channel string, q HistoryQuery, none bool) (ChannelInfo, []Message, error)
	// Events reads the event log itself.
	Events(ctx context.Context, q AuditQuery) ([]Event, error)
}

// Members is the live membership read model.
type Members interface {
	// Subscribers returns the ids of a channel's subscribers, sorted.
	Subscribers(app, channel string) []string
	// Connected reports whether a client has an open session in app.
	Connected(app, client string) bool
	// Count returns the number of subscribers of a channel, or of open
	// sessions of the app when channel is empty.
	Count(app, channel string) int
	// Channels lists an app's channels that have subscribers, by name: at
	// most limit of them, named after after.
	Channels(app, after string, limit int) []LiveChannel
	// KickTook waits for the client.kicked.v1 committed as event seq to be
	// applied, and says whether it closed a connection of its client: nil
	// then; CodeNotFound when the client's connection began closing after
	// the kick's Fence, before the kick was applied; and
	// CodeUnavailable when the event was not applied within a bound, or
	// ctx ended (the kick is recorded, and takes effect once applied).
	// Once it has returned nil the connection is closing.
	KickTook(ctx context.Context, app, client string, seq uint64) error
	// Fence stops a client's connection on this server from recording
	// any more of its subscribes and publishes, once the one being
	// recorded now, if any, is: a kick fences its client before it
	// appends, so that it follows, in the log, every subscribe and
	// publish of the client's. done(seq) ends the wait: with the kick's
	// sequence number the fence stays (the kick is in the log), with 0
	// the connection records requests again (the kick's append failed).
	// A request that reaches its record meanwhile waits for done, which
	// must come soon: after one append. Fence reports false when the
	// client has no connection here, one closing, or one whose kick is
	// committed; pending is that kick's sequence number in the last case
	// (and when the kick is what closes the connection), 0 otherwise.
	Fence(app, client string) (done func(seq uint64), pending uint64, ok bool)
}

// LiveChannel is a channel with subscribers, and how many.
type LiveChannel struct {
	Channel     string
	Subscribers int
}

// Purged is what a purge of an app's history deleted, and what of it is
// left: what a subscription or a replay had yet to read, events not yet
// applied or of sessions still open, and, without the audit, every
// event.
type Purged struct {
	Messages, Events         int // deleted
	MessagesLeft, EventsLeft int // still in the log, but the log's newest event
	// NewestKept: the log's newest event is the app's, and stays, as it
	// always does (sequence numbers are never given twice).
	NewestKept bool
	// Unknown: the log holds nothing of the app (no channel, no event): a
	// name mistyped, never hosted here, or an app without a channel whose
	// events were all purged before.
	Unknown bool
}

// ChannelInfo describes a channel's history stream.
type ChannelInfo struct {
	App     string `json:"-"`
	Channel string `json:"channel"`
	Epoch   string `json:"epoch"`
	// Head is the offset of the newest message; 0 when there is none.
	Head uint64 `json:"head"`
	// First is the oldest offset still retained; Head+1 when none is.
	First uint64 `json:"first_offset"`
}

// Message is a retained broadcast as history returns it.
type Message struct {
	Offset uint64          `json:"offset"`
	Time   int64           `json:"timestamp"`
	Seq    uint64          `json:"seq"`
	Data   json.RawMessage `json:"data"`
}

// HistoryQuery selects messages of one channel. After, Since and Until
// combine; Last, when set, means the newest Last messages (after the other
// filters), returned in ascending order.
type HistoryQuery struct {
	After   uint64 // offsets greater than After
	Upto    uint64 // offsets at most Upto; 0 means no bound
	Since   int64  // timestamp >= Since (unix ms); 0 means no bound
	Until   int64  // timestamp < Until (unix ms); 0 means no bound
	Last    int
	Limit   int
	Reverse bool // newest first
	// MaxBytes bounds the messages' data a read holds (HistoryPageFull):
	// 0 is MaxPageBytes, and a negative value leaves the read unbounded.
	MaxBytes int
}

// AuditQuery selects events of the log. Zero fields do not filter.
type AuditQuery struct {
	App     string
	Types   []string
	Channel string
	Client  string
	Since   int64 // unix ms, inclusive
	Until   int64 // unix ms, exclusive
	After   uint64
	Limit   int
}

// Client describes a WebSocket connection to hooks and handlers.
type Client struct {
	ID          string            `json:"id"`
	App         string            `json:"app"`
	Remote      string            `json:"remote"`
	ConnectedAt int64             `json:"connectedAt"` // unix ms
	Query       map[string]string `json:"query"`
}

// Hooks are an app's decisions about its clients, run before the facts
// they guard are recorded. A hook refuses by returning an error (with code
// not_allowed for a plain refusal). Implementations are safe for concurrent
// use.
type Hooks interface {
	// OnConnect may refuse a new connection.
	OnConnect(ctx context.Context, c Client) error
	// OnSubscribe may refuse a subscription.
	OnSubscribe(ctx context.Context, c Client, channel string) error
	// OnPublish returns the data to broadcast for a client publish,
	// possibly changed; drop is true when the message is to be dropped.
	OnPublish(ctx context.Context, c Client, channel string, data json.RawMessage) (out json.RawMessage, drop bool, err error)
	// OnDisconnect is told that a connection ended. applied, when not
	// nil, waits for the end to be applied to the membership, which the
	// hook reads (subscribers, count): it is called, under the run's
	// context, only when the app has an onDisconnect to run.
	OnDisconnect(ctx context.Context, c Client, reason string, applied func(context.Context))
}
