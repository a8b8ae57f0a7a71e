package js_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/projections"
	"github.com/fazt-realtime/fazt/transport/js"
)

// leavingSink is a connection that began to close (its client leaving)
// after a kick fenced it: the kick, applied, closes nothing.
type leavingSink struct{}

func (leavingSink) Send([]byte) bool { return true }
func (leavingSink) Kick(string) bool { return false }
func (leavingSink) Overflow()        {}
func (leavingSink) Fence() (func(uint64), uint64, bool) {
	return func(uint64) {}, 0, true
}

// A kick of a client that has just left throws not_found, as for a client
// not connected; it answered kicked: true, for a client gone before the
// kick. Left before the kick (its connection gone, its end committed but
// not yet applied, so the membership still has it connected), the kick
// records nothing; leaving as it was kicked, the kick is recorded,
// applied, and finds it closed nothing.
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
	t.Cleanup(func() { close(gate); consumer.Stop(); <-consumer.Done() })
	connect := func(client string) {
		t.Helper()
		evs, err := e.log.Append(ctx, &domain.ClientConnected{App: "a", Client: client})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.members.WaitApplied(ctx, evs[0].Seq); err != nil {
			t.Fatal(err)
		}
	}
	kick := func(client string) {
		t.Helper()
		code, body := e.do("a", "POST", "/api/?id="+client, "")
		var got map[string]any
		if err := json.Unmarshal([]byte(body), &got); err != nil || code != 200 || got["code"] != "not_found" {
			t.Fatalf("kick of %s, a client that has just left: %d %s, want not_found", client, code, body)
		}
	}
	kicks := func() int {
		t.Helper()
		evs, err := e.log.Events(ctx, domain.AuditQuery{App: "a", Types: []string{"client.kicked.v1"}})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}

	// c2 begins to leave after the kick's fence.
	e.members.Attach("a", "c2", leavingSink{})
	connect("c2")
	kick("c2")
	if n := kicks(); n != 1 {
		t.Fatalf("%d kicks recorded, want the one of c2", n)
	}

	// c1 left: no connection here (a connection detaches before its end
	// is appended); its end is not applied until the cleanup.
	connect("c1")
	if _, err := e.log.Append(ctx, &domain.ClientDisconnected{App: "a", Client: "c1", Reason: domain.ReasonClientClosed}); err != nil {
		t.Fatal(err)
	}
	if !e.members.Connected("a", "c1") {
		t.Fatal("c1's end is applied already")
	}
	kick("c1")
	if n := kicks(); n != 1 {
		t.Fatalf("%d kicks recorded, want c2's alone: none of a client that had left", n)
	}
}
