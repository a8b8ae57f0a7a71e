package js_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/projections"
	"github.com/fazt-realtime/fazt/transport/js"
)

// A kick of a client whose end is committed but not yet applied (the
// membership, which the kick checks, still has it connected) waits for
// the kick to be applied, finds then that it closed nothing, and throws
// not_found, as for a client not connected. It answered kicked: true,
// for a client gone before the kick.
func TestAKickOfAClientThatHasJustLeftIsNotFound(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `module.exports = (req) => {
  try { return fazt.realtime.kick(req.query.id, "late"); } catch (err) { return { code: err.code }; }
};`}, js.Config{})
	ctx := context.Background()
	gate := make(chan struct{}) // the end of c1 is applied once it is closed
	handle := func(msg *message.Message) error {
		if ev, err := events.EventOf(msg); err == nil {
			if _, ok := ev.Fact.(*domain.ClientDisconnected); ok {
				<-gate
			}
		}
		return e.members.Handle(msg)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	consumer, err := projections.Consume(ctx, projections.MembershipName, e.log.Subscriber(events.SubscriberConfig{}), events.Topic, handle, quiet)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(func() { release(); consumer.Stop(); <-consumer.Done() })

	evs, err := e.log.Append(ctx, &domain.ClientConnected{App: "a", Client: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.members.WaitApplied(ctx, evs[0].Seq); err != nil {
		t.Fatal(err)
	}
	end, err := e.log.Append(ctx, &domain.ClientDisconnected{App: "a", Client: "c1", Reason: domain.ReasonClientClosed})
	if err != nil {
		t.Fatal(err)
	}
	// Once the kick is committed after the end, the end is applied, then
	// the kick.
	go func() {
		for e.log.Head() <= end[0].Seq {
			time.Sleep(time.Millisecond)
		}
		release()
	}()
	code, body := e.do("a", "POST", "/api/?id=c1", "")
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil || code != 200 || got["code"] != "not_found" {
		t.Fatalf("kick of a client that has just left: %d %s, want not_found", code, body)
	}
}
