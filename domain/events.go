package domain

import (
	"bytes"
	"encoding/json"
)

// Event names as stored in the log. They are pinned here, versioned, and never
// derived from Go type names, so that renaming a type never changes what the
// log says.
const (
	NameClientConnected     = "client.connected.v1"
	NameClientDisconnected  = "client.disconnected.v1"
	NameChannelSubscribed   = "channel.subscribed.v1"
	NameChannelUnsubscribed = "channel.unsubscribed.v1"
	NameMessageBroadcast    = "message.broadcast.v1"
	NameBroadcastAll        = "message.broadcast_all.v1"
	NameClientKicked        = "client.kicked.v1"
)

// EventNames lists every event name, in a stable order.
var EventNames = []string{
	NameClientConnected, NameClientDisconnected, NameChannelSubscribed,
	NameChannelUnsubscribed, NameMessageBroadcast, NameBroadcastAll, NameClientKicked,
}

// Fact is the body of an event: something that happened, in the past tense.
type Fact interface {
	// EventName is the fact's pinned, versioned name.
	EventName() string
	// Scope names the app, channel and client the fact is about; channel
	// and client may be empty. The log indexes events by them.
	Scope() (app, channel, client string)
}

// Event is a fact as committed to the log: its global sequence number (1, 2,
// 3, ... across the whole log) and the commit time in unix milliseconds.
type Event struct {
	Seq  uint64
	Time int64
	Fact Fact
}

// Actor says who did something: the server API with a key, a JS handler, a
// client, or the server itself.
type Actor struct {
	Kind string `json:"kind"`
	ID   string `json:"id,omitempty"`
}

// Actor kinds.
const (
	ActorAdmin  = "admin_key" // the server's admin key
	ActorAPIKey = "api_key"   // one of the app's own keys; ID names it
	ActorJS     = "js"        // a JS handler; ID is its file
	ActorClient = "client"    // a WebSocket client; ID is its client id
	ActorServer = "server"    // the server itself
)

// Disconnect reasons recorded in ClientDisconnected.
const (
	ReasonClientClosed     = "client_closed"
	ReasonKicked           = "kicked"
	ReasonSlowConsumer     = "slow_consumer"
	ReasonHeartbeatTimeout = "heartbeat_timeout"
	ReasonServerShutdown   = "server_shutdown"
	ReasonServerRestart    = "server_restart"
	ReasonConnectionLost   = "connection_lost"
	ReasonTooLarge         = "too_large"
	// ReasonProtocolError ends a connection whose client sent a frame
	// that breaks the WebSocket protocol (close 1002).
	ReasonProtocolError = "protocol_error"
	// ReasonServerError ends a session that the server could not serve:
	// its connection could not be set up, or a replay could not read
	// history.
	ReasonServerError = "server_error"
	// ReasonAppRemoved ends the connections of an app that the server no
	// longer hosts: its folder was removed (close 4002).
	ReasonAppRemoved = "app_removed"
)

// ReasonTokenExpired is recorded in ChannelUnsubscribed when a private
// channel's subscription ends because its token expired.
const ReasonTokenExpired = "token_expired"

// ClientConnected records a WebSocket connection accepted for an app.
type ClientConnected struct {
	App       string            `json:"app"`
	Client    string            `json:"client"`
	Remote    string            `json:"remote,omitempty"`
	UserAgent string            `json:"user_agent,omitempty"`
	Origin    string            `json:"origin,omitempty"`
	Query     map[string]string `json:"query,omitempty"`
}

// ClientDisconnected records the end of a connection and why it ended.
type ClientDisconnected struct {
	App    string `json:"app"`
	Client string `json:"client"`
	Reason string `json:"reason"`
}

// ChannelSubscribed records a client joining a channel, with where it asked
// its history to start.
type ChannelSubscribed struct {
	App     string `json:"app"`
	Channel string `json:"channel"`
	Client  string `json:"client"`
	Start   Start  `json:"start"`
	// Head and Epoch are the channel's head offset and epoch at this
	// event's place in the log, set by the log when it commits the event
	// (nil in events written before they existed). Epoch is empty for a
	// channel that has never had a message.
	Head  *uint64 `json:"head,omitempty"`
	Epoch string  `json:"epoch,omitempty"`
}

// ChannelUnsubscribed records a client leaving a channel.
type ChannelUnsubscribed struct {
	App     string `json:"app"`
	Channel string `json:"channel"`
	Client  string `json:"client"`
	// Reason is why the server ended the subscription (ReasonTokenExpired);
	// empty when the client left.
	Reason string `json:"reason,omitempty"`
}

// MessageBroadcast records a message sent to a channel. Offset and Epoch are
// assigned by the log when the event commits: callers leave them zero.
type MessageBroadcast struct {
	App       string          `json:"app"`
	Channel   string          `json:"channel"`
	Offset    uint64          `json:"offset"`
	Epoch     string          `json:"epoch"`
	Data      json.RawMessage `json:"data,omitempty"`
	Publisher Actor           `json:"publisher"`
}

// BroadcastAll records a message sent to every connection of an app.
type BroadcastAll struct {
	App       string          `json:"app"`
	Data      json.RawMessage `json:"data"`
	Publisher Actor           `json:"publisher"`
}

// ClientKicked records an operator or handler disconnecting a client.
type ClientKicked struct {
	App    string `json:"app"`
	Client string `json:"client"`
	Reason string `json:"reason,omitempty"`
	By     Actor  `json:"by"`
}

func (*ClientConnected) EventName() string     { return NameClientConnected }
func (*ClientDisconnected) EventName() string  { return NameClientDisconnected }
func (*ChannelSubscribed) EventName() string   { return NameChannelSubscribed }
func (*ChannelUnsubscribed) EventName() string { return NameChannelUnsubscribed }
func (*MessageBroadcast) EventName() string    { return NameMessageBroadcast }
func (*BroadcastAll) EventName() string        { return NameBroadcastAll }
func (*ClientKicked) EventName() string        { return NameClientKicked }

func (f *ClientConnected) Scope() (string, string, string)    { return f.App, "", f.Client }
func (f *ClientDisconnected) Scope() (string, string, string) { return f.App, "", f.Client }
func (f *ChannelSubscribed) Scope() (string, string, string)  { return f.App, f.Channel, f.Client }
func (f *ChannelUnsubscribed) Scope() (string, string, string) {
	return f.App, f.Channel, f.Client
}
func (f *MessageBroadcast) Scope() (string, string, string) {
	client := ""
	if f.Publisher.Kind == ActorClient {
		client = f.Publisher.ID
	}
	return f.App, f.Channel, client
}
func (f *BroadcastAll) Scope() (string, string, string) { return f.App, "", "" }
func (f *ClientKicked) Scope() (string, string, string) { return f.App, "", f.Client }

// NewFact returns an empty fact for an event name, for decoding; ok is false
// for a name this version does not know.
func NewFact(name string) (f Fact, ok bool) {
	switch name {
	case NameClientConnected:
		return &ClientConnected{}, true
	case NameClientDisconnected:
		return &ClientDisconnected{}, true
	case NameChannelSubscribed:
		return &ChannelSubscribed{}, true
	case NameChannelUnsubscribed:
		return &ChannelUnsubscribed{}, true
	case NameMessageBroadcast:
		return &MessageBroadcast{}, true
	case NameBroadcastAll:
		return &BroadcastAll{}, true
	case NameClientKicked:
		return &ClientKicked{}, true
	}
	return nil, false
}

// Start is where a subscription asked its history to begin.
type Start struct {
	Mode  StartMode `json:"mode"`
	Value int64     `json:"value,omitempty"` // offset, count or unix ms
	Epoch string    `json:"epoch,omitempty"`
}

// StartMode is how a subscribe chose its starting point.
type StartMode string

// Start modes.
const (
	StartLive   StartMode = "live"   // no history
	StartOffset StartMode = "offset" // messages with offset > Value
	StartLast   StartMode = "last"   // the last Value messages
	StartSince  StartMode = "since"  // messages with timestamp >= Value
)

// HasData reports whether data is a message: a JSON value other than
// null. Every way to publish or broadcast refuses a message without one,
// and so does the log; null is what an onPublish hook returns to drop a
// message, not a message.
func HasData(data json.RawMessage) bool {
	d := bytes.TrimSpace(data)
	return len(d) > 0 && !bytes.Equal(d, []byte("null"))
}
