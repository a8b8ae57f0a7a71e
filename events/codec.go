package events

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/fazt-realtime/fazt/domain"
)

// Topic is the Watermill topic of the event log. The log is one totally
// ordered stream, so there is one topic; the event name is in metadata.
const Topic = "fazt.events"

// Metadata keys of event messages.
const (
	MetaName    = "name"    // the fact's pinned name, e.g. channel.subscribed.v1
	MetaApp     = "app"     // the app the fact belongs to
	MetaChannel = "channel" // the channel, when there is one
	MetaClient  = "client"  // the client, when there is one
	MetaSeq     = "seq"     // set when committed: the global sequence
	MetaTime    = "time"    // set when committed: unix milliseconds
	MetaOffset  = "offset"  // set when committed, broadcasts only
	MetaEpoch   = "epoch"   // set when committed, broadcasts only
)

type ctxKey int

const (
	factKey ctxKey = iota
	eventKey
)

// NewMessage encodes a fact as a Watermill message: its JSON as payload, its
// name and scope in metadata. The fact also rides in the message's context,
// so in-process consumers never decode what they already have.
func NewMessage(f domain.Fact) (*message.Message, error) {
	payload, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", f.EventName(), err)
	}
	msg := message.NewMessage(watermill.NewULID(), payload)
	setScope(msg, f)
	msg.SetContext(context.WithValue(context.Background(), factKey, f))
	return msg, nil
}

func setScope(msg *message.Message, f domain.Fact) {
	app, channel, client := f.Scope()
	msg.Metadata.Set(MetaName, f.EventName())
	msg.Metadata.Set(MetaApp, app)
	if channel != "" {
		msg.Metadata.Set(MetaChannel, channel)
	}
	if client != "" {
		msg.Metadata.Set(MetaClient, client)
	}
}

// FactOf returns the fact a message carries, decoding its payload by the
// name in its metadata when the message did not come from this process.
func FactOf(msg *message.Message) (domain.Fact, error) {
	if ev, ok := msg.Context().Value(eventKey).(domain.Event); ok {
		return ev.Fact, nil
	}
	if f, ok := msg.Context().Value(factKey).(domain.Fact); ok {
		return f, nil
	}
	return decodeFact(msg.Metadata.Get(MetaName), msg.Payload)
}

// EventOf returns the committed event a message from the log's Subscriber
// carries: the fact with its sequence number and commit time.
func EventOf(msg *message.Message) (domain.Event, error) {
	if ev, ok := msg.Context().Value(eventKey).(domain.Event); ok {
		return ev, nil
	}
	f, err := FactOf(msg)
	if err != nil {
		return domain.Event{}, err
	}
	seq, err := strconv.ParseUint(msg.Metadata.Get(MetaSeq), 10, 64)
	if err != nil {
		return domain.Event{}, fmt.Errorf("message %s has no committed sequence", msg.UUID)
	}
	ts, _ := strconv.ParseInt(msg.Metadata.Get(MetaTime), 10, 64)
	return domain.Event{Seq: seq, Time: ts, Fact: f}, nil
}

func decodeFact(name string, payload []byte) (domain.Fact, error) {
	f, ok := domain.NewFact(name)
	if !ok {
		return nil, fmt.Errorf("unknown event name %q", name)
	}
	if err := json.Unmarshal(payload, f); err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	return f, nil
}

// committedMessage builds the message a Subscriber delivers for a committed
// event.
func committedMessage(ctx context.Context, r *record) *message.Message {
	msg := message.NewMessage(r.uuid, r.payload)
	setScope(msg, r.ev.Fact)
	stamp(msg, r.ev)
	msg.SetContext(context.WithValue(ctx, eventKey, r.ev))
	return msg
}

func stamp(msg *message.Message, ev domain.Event) {
	msg.Metadata.Set(MetaSeq, strconv.FormatUint(ev.Seq, 10))
	msg.Metadata.Set(MetaTime, strconv.FormatInt(ev.Time, 10))
	if mb, ok := ev.Fact.(*domain.MessageBroadcast); ok {
		msg.Metadata.Set(MetaOffset, strconv.FormatUint(mb.Offset, 10))
		msg.Metadata.Set(MetaEpoch, mb.Epoch)
	}
}
