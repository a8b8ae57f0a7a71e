package events

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/fazt-realtime/fazt/domain"
)

// BenchmarkAppendBatch commits n broadcasts per Append call, that is per
// transaction; ns/event is the cost of one durable append at that batch size.
func BenchmarkAppendBatch(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			l := mustOpen(b, filepath.Join(b.TempDir(), "log.db"))
			ctx := context.Background()
			facts := make([]domain.Fact, n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range facts {
					facts[j] = broadcast("app", "bench", `{"text":"hello, world","n":12345}`)
				}
				if _, err := l.Append(ctx, facts...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}
}

// BenchmarkAppendConcurrent has many goroutines append one broadcast each
// at a time, as HTTP publishes do: the writer groups them into batches.
func BenchmarkAppendConcurrent(b *testing.B) {
	l := mustOpen(b, filepath.Join(b.TempDir(), "log.db"))
	ctx := context.Background()
	var ch atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		channel := fmt.Sprintf("c%d", ch.Add(1)%8)
		for pb.Next() {
			if _, err := l.Append(ctx, broadcast("app", channel, `{"text":"hello, world","n":12345}`)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkMessagesPage reads a channel's history in pages of 1000, as a
// replay does; ns/msg is the cost of one replayed row.
func BenchmarkMessagesPage(b *testing.B) {
	l := mustOpen(b, filepath.Join(b.TempDir(), "log.db"))
	ctx := context.Background()
	const total, page = 20000, 1000
	facts := make([]domain.Fact, 1000)
	for i := 0; i < total/len(facts); i++ {
		for j := range facts {
			facts[j] = broadcast("app", "history", fmt.Sprintf(`{"text":"hello, world","n":%d}`, i*len(facts)+j))
		}
		if _, err := l.Append(ctx, facts...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	var rows int
	for i := 0; i < b.N; i++ {
		after := uint64(i*page) % total
		msgs, err := l.Messages(ctx, "app", "history", domain.HistoryQuery{After: after, Upto: total, Limit: page})
		if err != nil || len(msgs) != page {
			b.Fatalf("page after %d: %d messages, %v", after, len(msgs), err)
		}
		rows += len(msgs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rows), "ns/msg")
}

// BenchmarkSubscriberDelivery measures the path from a commit to a
// consumer: the tail, the Watermill message and the ack, per event.
func BenchmarkSubscriberDelivery(b *testing.B) {
	l := mustOpen(b, filepath.Join(b.TempDir(), "log.db"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := l.Subscriber(SubscriberConfig{After: l.Head()})
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, Topic)
	if err != nil {
		b.Fatal(err)
	}
	const batch = 1000
	facts := make([]domain.Fact, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		for j := 0; j < n; j++ {
			facts[j] = broadcast("app", "sub", `{"n":1}`)
		}
		b.StopTimer()
		if _, err := l.Append(ctx, facts[:n]...); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for j := 0; j < n; j++ {
			var m *message.Message
			select {
			case m = <-msgs:
			case <-time.After(10 * time.Second):
				b.Fatal("no delivery")
			}
			m.Ack()
		}
		done += n
	}
}

// BenchmarkAppendManyChannels commits batches of 32 broadcasts, each to a
// random one of 2,000 channels that already have history, as `fazt bench
// channels` does through the API: every append lands on pages of its own
// channel, which no other append in the batch shares.
func BenchmarkAppendManyChannels(b *testing.B) {
	l := mustOpen(b, filepath.Join(b.TempDir(), "log.db"))
	ctx := context.Background()
	const channels, batch = 2000, 32
	names := make([]string, channels)
	facts := make([]domain.Fact, 0, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("room-%d", i)
	}
	for round := 0; round < 10; round++ {
		for i, name := range names {
			facts = append(facts, broadcast("app", name, `{"text":"hello, world","n":12345}`))
			if len(facts) == cap(facts) || i == len(names)-1 {
				if _, err := l.Append(ctx, facts...); err != nil {
					b.Fatal(err)
				}
				facts = facts[:0]
			}
		}
	}
	rng := uint32(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		facts = facts[:0]
		for j := 0; j < batch; j++ {
			rng = rng*1664525 + 1013904223
			facts = append(facts, broadcast("app", names[(rng>>8)%channels], `{"text":"hello, world","n":12345}`))
		}
		if _, err := l.Append(ctx, facts...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
}

// auditLog fills a log with 1,000 channels, each with a client that
// subscribed to it and 50 broadcasts: 52,000 events of one app.
func auditLog(b *testing.B) *Log {
	l := mustOpen(b, filepath.Join(b.TempDir(), "log.db"))
	ctx := context.Background()
	for c := 0; c < 1000; c++ {
		client, channel := fmt.Sprintf("client-%04d", c), fmt.Sprintf("room-%d", c)
		facts := []domain.Fact{
			&domain.ClientConnected{App: "app", Client: client},
			&domain.ChannelSubscribed{App: "app", Channel: channel, Client: client},
		}
		for i := 0; i < 50; i++ {
			facts = append(facts, broadcast("app", channel, `{"text":"hello, world"}`))
		}
		if _, err := l.Append(ctx, facts...); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// BenchmarkAuditByChannel reads one channel's audit trail (52 events)
// out of a log of 52,000: it must be found by the channel's index.
func BenchmarkAuditByChannel(b *testing.B) {
	l := auditLog(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		evs, err := l.Events(ctx, domain.AuditQuery{App: "app", Channel: fmt.Sprintf("room-%d", i%1000), Limit: 100})
		if err != nil || len(evs) != 51 {
			b.Fatalf("%d events, %v", len(evs), err)
		}
	}
}

// BenchmarkSubscribersAt computes who was subscribed to one channel from
// the same log.
func BenchmarkSubscribersAt(b *testing.B) {
	l := auditLog(b)
	ctx := context.Background()
	now := time.Now().UnixMilli() + 1000
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := i % 1000
		got, err := l.SubscribersAt(ctx, "app", fmt.Sprintf("room-%d", c), now)
		if err != nil || len(got) != 1 || got[0] != fmt.Sprintf("client-%04d", c) {
			b.Fatalf("%v, %v", got, err)
		}
	}
}

// BenchmarkTimeBounds reads a page of a channel's history and of the
// audit trail from a time, in a log of 100,000 broadcasts to that channel:
// the time becomes an offset or a sequence by a binary search over the
// keys, whose bounds must each cost one lookup, not a read of every row.
func BenchmarkTimeBounds(b *testing.B) {
	l := mustOpen(b, filepath.Join(b.TempDir(), "log.db"))
	ctx := context.Background()
	facts := make([]domain.Fact, 1000)
	var mid int64
	for i := 0; i < 100; i++ {
		for j := range facts {
			facts[j] = broadcast("app", "history", `{"text":"hello, world"}`)
		}
		evs, err := l.Append(ctx, facts...)
		if err != nil {
			b.Fatal(err)
		}
		if i == 50 {
			mid = evs[0].Time
		}
	}
	b.Run("history", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			msgs, err := l.Messages(ctx, "app", "history", domain.HistoryQuery{Since: mid, Limit: 10})
			if err != nil || len(msgs) != 10 {
				b.Fatalf("%d messages, %v", len(msgs), err)
			}
		}
	})
	b.Run("audit", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			evs, err := l.Events(ctx, domain.AuditQuery{Since: mid, Limit: 10})
			if err != nil || len(evs) != 10 {
				b.Fatalf("%d events, %v", len(evs), err)
			}
		}
	})
}

// fillChannels appends three broadcasts to each of n channels of app, a
// thousand channels a commit.
func fillChannels(b *testing.B, l *Log, n int) {
	facts := make([]domain.Fact, 0, 3000)
	for c := 0; c < n; c++ {
		for i := 0; i < 3; i++ {
			facts = append(facts, broadcast("app", fmt.Sprintf("room-%d", c), `{"n":1}`))
		}
		if len(facts) == cap(facts) || c == n-1 {
			if _, err := l.Append(context.Background(), facts...); err != nil {
				b.Fatal(err)
			}
			facts = facts[:0]
		}
	}
}

// BenchmarkOpenLoadsHeads opens a file of 1 or 20,000 channels, fewer
// than the head cache holds, so that the open reads every channel's head
// (channel_heads): the difference is what a start pays for the heads.
func BenchmarkOpenLoadsHeads(b *testing.B) {
	for _, n := range []int{1, 20000} {
		b.Run(fmt.Sprintf("channels=%d", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "log.db")
			l := mustOpen(b, path)
			fillChannels(b, l, n)
			l.Close()
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l, err := Open(ctx, Config{Path: path})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if !l.allHeads || len(l.heads) != n {
					b.Fatalf("%d heads loaded (all: %v), want %d", len(l.heads), l.allHeads, n)
				}
				l.Close()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkRetentionPass makes a retention pass over 20,000 channels of
// three messages each, with a policy (10 messages, 24 hours) under which
// nothing is due: the cost of a pass that finds nothing, paid every
// interval.
func BenchmarkRetentionPass(b *testing.B) {
	l := mustOpen(b, filepath.Join(b.TempDir(), "log.db"))
	ctx := context.Background()
	fillChannels(b, l, 20000)
	cfg := RetentionConfig{Policy: func(string) RetentionPolicy {
		return RetentionPolicy{MaxMessages: 10, MaxAge: 24 * time.Hour}
	}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := l.RetainOnce(ctx, cfg)
		if err != nil || res.Messages != 0 {
			b.Fatalf("%+v, %v", res, err)
		}
	}
}

// BenchmarkTrimAuditKeeps makes an audit retention pass over a log of
// 100,000 old broadcasts to 100 channels whose messages are all retained,
// so that every event stays: what a pass costs an app that keeps its
// messages and trims its audit, every interval.
func BenchmarkTrimAuditKeeps(b *testing.B) {
	l := mustOpen(b, filepath.Join(b.TempDir(), "log.db"))
	ctx := context.Background()
	facts := make([]domain.Fact, 1000)
	for i := 0; i < 100; i++ {
		for j := range facts {
			facts[j] = broadcast("app", fmt.Sprintf("room-%d", j%100), `{"n":1}`)
		}
		if _, err := l.Append(ctx, facts...); err != nil {
			b.Fatal(err)
		}
	}
	trimAuditKeepingAll(b, ctx, l)
}

// BenchmarkChannelsPage reads a page of 100 channels from the middle of
// 100,000, as GET /_api/channels?after= does: the cost of one page, which
// no longer grows with the number of channels (until 2026-11-27 the call
// listed every channel).
func BenchmarkChannelsPage(b *testing.B) {
	l := mustOpen(b, filepath.Join(b.TempDir(), "log.db"))
	ctx := context.Background()
	facts := make([]domain.Fact, 0, 5000)
	for c := 0; c < 100000; c++ {
		facts = append(facts, broadcast("app", fmt.Sprintf("room-%06d", c), `{"n":1}`))
		if len(facts) == cap(facts) {
			if _, err := l.Append(ctx, facts...); err != nil {
				b.Fatal(err)
			}
			facts = facts[:0]
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		page, err := l.Channels(ctx, "app", "room-050000", 100)
		if err != nil || len(page) != 100 || page[0].Channel != "room-050001" {
			b.Fatalf("%d channels, %v", len(page), err)
		}
	}
}

// BenchmarkTrimAuditManyChannels makes an audit retention pass over an
// app of 20,000 channels of three messages each, all retained: the pass
// has no broadcast of a trimmed message to drop, the usual case of an
// app with a channel per user or document, every interval.
func BenchmarkTrimAuditManyChannels(b *testing.B) {
	l := mustOpen(b, filepath.Join(b.TempDir(), "log.db"))
	ctx := context.Background()
	fillChannels(b, l, 20000)
	trimAuditKeepingAll(b, ctx, l)
}

// trimAuditKeepingAll times audit passes of app over l that delete
// nothing: the cost of a pass that finds all it reads kept.
func trimAuditKeepingAll(b *testing.B, ctx context.Context, l *Log) {
	cutoff := time.Now().Add(time.Hour).UnixMilli()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if n, err := l.TrimAudit(ctx, "app", cutoff, 500); err != nil || n != 0 {
			b.Fatalf("deleted %d, %v", n, err)
		}
	}
}
