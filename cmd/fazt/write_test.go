package main

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/transport/ws"
)

func (tn *testNode) metric(name string) float64 {
	tn.t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(tn.metrics())
	if m == nil {
		tn.t.Fatalf("no metric %s", name)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestWriteDelayCoalescesFrames checks that with a write delay, frames
// queued for a connection in quick succession share socket writes, and
// still arrive complete and in order.
func TestWriteDelayCoalescesFrames(t *testing.T) {
	tn := startTestNode(t, nil, withWS(ws.Config{WriteDelay: 200 * time.Millisecond}))
	c := tn.dial("", "")
	c.subscribe(map[string]any{"channel": "batch"})
	frames0, writes0 := tn.metric("fazt_ws_frames_sent_total"), tn.metric("fazt_ws_writes_total")
	// Messages a few milliseconds apart: without the delay the idle
	// writer would write each on its own.
	const n = 20
	for i := 0; i < n; i++ {
		mb := &domain.MessageBroadcast{App: "default", Channel: "batch", Data: json.RawMessage(strconv.Itoa(i)), Publisher: domain.Actor{Kind: domain.ActorServer}}
		if _, err := tn.node.log.Append(context.Background(), mb); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := offsets(c.messages("batch", n)); !slices.Equal(got, seqRange(1, n)) {
		t.Fatalf("offsets %v", got)
	}
	frames := tn.metric("fazt_ws_frames_sent_total") - frames0
	writes := tn.metric("fazt_ws_writes_total") - writes0
	if frames < n || writes > n/3 {
		t.Fatalf("%v frames in %v writes: not coalesced", frames, writes)
	}
	t.Logf("%v frames in %v writes", frames, writes)
}
