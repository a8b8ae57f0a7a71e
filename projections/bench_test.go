package projections_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/projections"
	"github.com/fazt-realtime/fazt/transport/ws"
)

// countingSink takes every frame, as a connection with room in its queue does.
type countingSink struct{ frames, bytes atomic.Int64 }

func (s *countingSink) Send(frame []byte) bool {
	s.frames.Add(1)
	s.bytes.Add(int64(len(frame)))
	return true
}
func (s *countingSink) Kick(string) bool { return true }
func (s *countingSink) Overflow()        {}
func (s *countingSink) Fence() (func(uint64), uint64, bool) {
	return func(uint64) {}, 0, true
}

// BenchmarkFanOut applies broadcasts to a channel with n live local
// subscribers: the frame is encoded once and queued on every sink under
// the channel's lock. ns/delivery is the projection's share of the cost of
// one delivery (the socket write is the transport's).
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			ctx := context.Background()
			m := projections.NewMembership(ws.Encoder{}, func(context.Context, string, string) (uint64, string, error) {
				return 0, "", nil
			}, 0)
			seq := uint64(0)
			apply := func(f domain.Fact) {
				seq++
				if err := m.Apply(ctx, domain.Event{Seq: seq, Time: 1700000000000, Fact: f}); err != nil {
					b.Fatal(err)
				}
			}
			sinks := make([]*countingSink, n)
			for i := range sinks {
				id := fmt.Sprintf("c%d", i)
				sinks[i] = &countingSink{}
				m.Attach("app", id, sinks[i])
				apply(&domain.ClientConnected{App: "app", Client: id})
				apply(&domain.ChannelSubscribed{App: "app", Channel: "room", Client: id, Start: domain.Start{Mode: domain.StartLive}})
				_, _, seq, _ := m.CatchUp("app", "room", id)
				m.GoLive("app", "room", id, seq, 1<<30, 1<<30)
			}
			data := []byte(`{"text":"hello, world","at":1700000000000}`)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				apply(&domain.MessageBroadcast{App: "app", Channel: "room", Offset: uint64(i + 1), Epoch: "e", Data: data})
			}
			b.StopTimer()
			if got := sinks[n-1].frames.Load(); got != int64(b.N) {
				b.Fatalf("last sink got %d frames, want %d", got, b.N)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}

// BenchmarkSubscriptionsReconnect stores a client leaving and coming back
// to its channel while 10,000 other sessions, each with a subscription,
// are open: the delete of the leaving session's subscriptions must find
// them by client, not by reading every subscription of the app.
func BenchmarkSubscriptionsReconnect(b *testing.B) {
	ctx := context.Background()
	l, err := events.Open(ctx, events.Config{Path: filepath.Join(b.TempDir(), "log.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	p, err := projections.OpenSubscriptions(ctx, l)
	if err != nil {
		b.Fatal(err)
	}
	seq := uint64(0)
	apply := func(f domain.Fact) {
		seq++
		if err := p.Apply(ctx, domain.Event{Seq: seq, Time: 1700000000000, Fact: f}); err != nil {
			b.Fatal(err)
		}
	}
	const clients = 10000
	connect := func(i int) {
		id := fmt.Sprintf("client-%05d", i)
		apply(&domain.ClientConnected{App: "app", Client: id})
		apply(&domain.ChannelSubscribed{App: "app", Channel: fmt.Sprintf("room-%d", i), Client: id})
	}
	for i := 0; i < clients; i++ {
		connect(i)
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		apply(&domain.ClientDisconnected{App: "app", Client: fmt.Sprintf("client-%05d", i%clients), Reason: "client"})
		connect(i % clients)
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSessionCount counts an app's open sessions, as a JS count()
// or the example app's stats do, with 50,000 sessions open.
func BenchmarkSessionCount(b *testing.B) {
	ctx := context.Background()
	m := projections.NewMembership(ws.Encoder{}, func(context.Context, string, string) (uint64, string, error) {
		return 0, "", nil
	}, 0)
	for i := 0; i < 50000; i++ {
		if err := m.Apply(ctx, domain.Event{Seq: uint64(i + 1), Fact: &domain.ClientConnected{App: "app", Client: fmt.Sprintf("c%d", i)}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if n := m.Count("app", ""); n != 50000 {
			b.Fatalf("%d sessions", n)
		}
	}
}

// BenchmarkApplyWhileWaiting applies events while 4,096 WaitApplied calls
// wait for later ones, as in a reconnect storm, where each connect and
// subscribe waits for its event: applying one event must not visit every
// waiter.
func BenchmarkApplyWhileWaiting(b *testing.B) {
	ctx := context.Background()
	m := projections.NewMembership(ws.Encoder{}, func(context.Context, string, string) (uint64, string, error) {
		return 0, "", nil
	}, 0)
	// The waiters wait on goroutines of their own until the benchmark
	// ends (a call that gives up takes its waiter out).
	waitCtx, cancel := context.WithCancel(ctx)
	const waiting = 4096
	var started, ended sync.WaitGroup
	for i := 1; i <= waiting; i++ {
		started.Add(1)
		ended.Add(1)
		go func() {
			defer ended.Done()
			started.Done()
			m.WaitApplied(waitCtx, uint64(b.N+i))
		}()
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // for the last ones to be in the heap
	defer func() { cancel(); ended.Wait() }()
	data := []byte(`{"n":1}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		if err := m.Apply(ctx, domain.Event{Seq: uint64(i), Fact: &domain.MessageBroadcast{App: "app", Channel: "room", Offset: uint64(i), Data: data}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLiveChannelsPage lists a page of 100 live channels from the
// middle of 100,000 (each with one subscriber), as GET /_api/channels?after=
// does. A page still visits every live channel, but keeps only its own.
func BenchmarkLiveChannelsPage(b *testing.B) {
	ctx := context.Background()
	m := projections.NewMembership(ws.Encoder{}, func(context.Context, string, string) (uint64, string, error) {
		return 0, "", nil
	}, 0)
	for i := 0; i < 100000; i++ {
		ev := domain.Event{Seq: uint64(i + 1), Fact: &domain.ChannelSubscribed{App: "app", Channel: fmt.Sprintf("room-%06d", i), Client: fmt.Sprintf("c%d", i)}}
		if err := m.Apply(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if page := m.Channels("app", "room-050000", 100); len(page) != 100 || page[0].Channel != "room-050001" {
			b.Fatalf("%d channels", len(page))
		}
	}
}
