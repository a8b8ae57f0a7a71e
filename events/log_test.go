package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/promtext"
	"github.com/fazt-realtime/fazt/internal/testutil"
)

func mustOpen(tb testing.TB, path string) *Log {
	tb.Helper()
	return mustOpenConfig(tb, Config{Path: path})
}

// mustOpenConfig opens a log with cfg, closed at the test's end.
func mustOpenConfig(tb testing.TB, cfg Config) *Log {
	tb.Helper()
	l, err := Open(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("open %s: %v", cfg.Path, err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// appendSpread appends n broadcasts of data to app a, each in a
// transaction of its own, over the channels c0 to c49 in turn.
func appendSpread(t *testing.T, l *Log, n int, data string) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(context.Background(), broadcast("a", fmt.Sprintf("c%d", i%50), data)); err != nil {
			t.Fatal(err)
		}
	}
}

func broadcast(app, channel string, data string) *domain.MessageBroadcast {
	return &domain.MessageBroadcast{App: app, Channel: channel, Data: json.RawMessage(data), Publisher: domain.Actor{Kind: domain.ActorAdmin}}
}

// broadcasts appends n broadcasts to app's channel, with data 1 to n, each
// in a transaction of its own and gap after it, and returns their events.
func broadcasts(t *testing.T, l *Log, app, channel string, n int, gap time.Duration) []domain.Event {
	t.Helper()
	var out []domain.Event
	for i := 1; i <= n; i++ {
		evs, err := l.Append(context.Background(), broadcast(app, channel, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs[0])
		time.Sleep(gap)
	}
	return out
}

// TestConcurrentAppendsGetContiguousOffsets has many goroutines append to
// a few channels at once; every channel's offsets must be 1..N with no gap
// or repeat, and the global sequence contiguous.
func TestConcurrentAppendsGetContiguousOffsets(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	const writers, each = 16, 150
	channels := []string{"a", "b", "c"}
	var mu sync.Mutex
	got := map[string][]uint64{}
	var seqs []uint64
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				ch := channels[(w+i)%len(channels)]
				evs, err := l.Append(context.Background(), broadcast("app", ch, fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)))
				if err != nil {
					t.Error(err)
					return
				}
				mb := evs[0].Fact.(*domain.MessageBroadcast)
				mu.Lock()
				got[ch] = append(got[ch], mb.Offset)
				seqs = append(seqs, evs[0].Seq)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, ch := range channels {
		offs := got[ch]
		slices.Sort(offs)
		for i, o := range offs {
			if o != uint64(i+1) {
				t.Fatalf("channel %s: offsets %v... not contiguous at %d", ch, offs[:min(len(offs), 10)], i)
			}
		}
		info, err := l.Channel(context.Background(), "app", ch)
		if err != nil || info.Head != uint64(len(offs)) || info.First != 1 || info.Epoch == "" {
			t.Fatalf("channel %s info %+v, %v", ch, info, err)
		}
		total += len(offs)
	}
	slices.Sort(seqs)
	if len(seqs) != writers*each || seqs[0] != 1 || seqs[len(seqs)-1] != uint64(total) {
		t.Fatalf("sequence not contiguous: %d events, first %d, last %d", len(seqs), seqs[0], seqs[len(seqs)-1])
	}
}

func TestReopenContinuesOffsetsAndEpoch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.db")
	l, err := Open(context.Background(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := l.Append(context.Background(), broadcast("app", "x", "1"), broadcast("app", "x", "2"))
	if err != nil {
		t.Fatal(err)
	}
	epoch := evs[0].Fact.(*domain.MessageBroadcast).Epoch
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), broadcast("app", "x", "3")); err != ErrClosed {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
	l2 := mustOpen(t, path)
	evs, err = l2.Append(context.Background(), broadcast("app", "x", "3"))
	if err != nil {
		t.Fatal(err)
	}
	mb := evs[0].Fact.(*domain.MessageBroadcast)
	if mb.Offset != 3 || mb.Epoch != epoch || evs[0].Seq != 3 {
		t.Fatalf("after reopen: offset %d epoch %s seq %d; want 3 %s 3", mb.Offset, mb.Epoch, evs[0].Seq, epoch)
	}
}

func TestAppendRejectsBadFacts(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	for _, f := range []domain.Fact{
		broadcast("app", "bad channel", "1"),
		broadcast("app", "x", "{not json"),
		broadcast("", "x", "1"),
		&domain.MessageBroadcast{App: "app", Channel: "x", Offset: 5, Data: json.RawMessage("1")},
		broadcast("app", "x", "null"),
		broadcast("app", "x", " "),
		&domain.BroadcastAll{App: "app", Data: json.RawMessage("null")},
		&domain.BroadcastAll{App: "app", Data: json.RawMessage("{")},
	} {
		if _, err := l.Append(context.Background(), f); err == nil {
			t.Errorf("%+v accepted", f)
		}
	}
	if l.Head() != 0 {
		t.Fatalf("rejected facts reached the log: head %d", l.Head())
	}
}

func TestHistoryQueries(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	ctx := context.Background()
	var stamps []int64
	for _, ev := range broadcasts(t, l, "app", "h", 10, 2*time.Millisecond) {
		stamps = append(stamps, ev.Time)
	}
	offs := func(q domain.HistoryQuery) []uint64 {
		ms, err := l.Messages(ctx, "app", "h", q)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, m := range ms {
			if string(m.Data) != fmt.Sprint(m.Offset) {
				t.Fatalf("offset %d has data %s", m.Offset, m.Data)
			}
			out = append(out, m.Offset)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    domain.HistoryQuery
		want []uint64
	}{
		{"all", domain.HistoryQuery{}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"after 7", domain.HistoryQuery{After: 7}, []uint64{8, 9, 10}},
		{"after 2 upto 4", domain.HistoryQuery{After: 2, Upto: 4}, []uint64{3, 4}},
		{"limit", domain.HistoryQuery{After: 2, Limit: 2}, []uint64{3, 4}},
		{"last 3", domain.HistoryQuery{Last: 3}, []uint64{8, 9, 10}},
		{"last 3 upto 5", domain.HistoryQuery{Last: 3, Upto: 5}, []uint64{3, 4, 5}},
		{"reverse", domain.HistoryQuery{Reverse: true, Limit: 3}, []uint64{10, 9, 8}},
		{"since", domain.HistoryQuery{Since: stamps[5]}, []uint64{6, 7, 8, 9, 10}},
		{"until", domain.HistoryQuery{Until: stamps[2]}, []uint64{1, 2}},
	} {
		if got := offs(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if n, err := l.CountMessages(ctx, "app", "h", domain.HistoryQuery{Since: stamps[5], Upto: 9}); err != nil || n != 4 {
		t.Errorf("count since: %d %v, want 4", n, err)
	}
}

// TestSubscriberDeliversEveryEventInOrder checks the Watermill subscriber:
// old events from the file, new ones as they commit, in sequence order, and
// a nacked message redelivered.
func TestSubscriberDeliversEveryEventInOrder(t *testing.T) {
	// A tail of 8 forces the early events to come from the file.
	l, err := Open(context.Background(), Config{Path: filepath.Join(t.TempDir(), "log.db"), TailSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		if _, err := l.Append(ctx, broadcast("app", "s", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	sub := l.Subscriber(SubscriberConfig{PageSize: 7, NackDelay: time.Millisecond})
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, Topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(ctx, "other"); err == nil {
		t.Fatal("unknown topic accepted")
	}
	go func() {
		for i := 50; i < 100; i++ {
			l.Append(ctx, broadcast("app", "s", fmt.Sprint(i)))
		}
	}()
	nacked := false
	for want := uint64(1); want <= 100; {
		var msg *message.Message
		select {
		case msg = <-msgs:
		case <-time.After(10 * time.Second):
			t.Fatalf("no message %d", want)
		}
		ev, err := EventOf(msg)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Seq != want || msg.Metadata.Get(MetaSeq) != fmt.Sprint(want) || msg.Metadata.Get(MetaName) != domain.NameMessageBroadcast {
			t.Fatalf("got seq %d (%v), want %d", ev.Seq, msg.Metadata, want)
		}
		mb := ev.Fact.(*domain.MessageBroadcast)
		if string(mb.Data) != fmt.Sprint(want-1) || mb.Offset != want {
			t.Fatalf("event %d: data %s offset %d", want, mb.Data, mb.Offset)
		}
		// The payload decodes on its own, as a consumer in another process would.
		var decoded domain.MessageBroadcast
		if err := json.Unmarshal(msg.Payload, &decoded); err != nil || decoded.Offset != want || string(decoded.Data) != string(mb.Data) {
			t.Fatalf("payload %s: %v", msg.Payload, err)
		}
		if want == 30 && !nacked {
			nacked = true
			msg.Nack()
			continue
		}
		msg.Ack()
		want++
	}
}

// TestSubscriberNamesFilter checks filtered delivery from the file and
// from memory.
func TestSubscriberNamesFilter(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	ctx := context.Background()
	l.Append(ctx, &domain.ClientConnected{App: "a", Client: "c1"}, broadcast("a", "x", "1"), &domain.ClientDisconnected{App: "a", Client: "c1", Reason: "client_closed"})
	sub := l.Subscriber(SubscriberConfig{Names: []string{domain.NameClientConnected, domain.NameClientDisconnected}})
	defer sub.Close()
	msgs, _ := sub.Subscribe(ctx, Topic)
	var got []string
	for len(got) < 2 {
		m := <-msgs
		got = append(got, m.Metadata.Get(MetaName))
		m.Ack()
	}
	if !slices.Equal(got, []string{domain.NameClientConnected, domain.NameClientDisconnected}) {
		t.Fatalf("got %v", got)
	}
}

// TestPublisherTakesForeignMessages publishes a message built from JSON and
// metadata alone, as another Watermill component would.
func TestPublisherTakesForeignMessages(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	msg := message.NewMessage("u1", []byte(`{"app":"a","channel":"x","data":{"k":1},"publisher":{"kind":"server"}}`))
	msg.Metadata.Set(MetaName, domain.NameMessageBroadcast)
	if err := l.Publisher().Publish(Topic, msg); err != nil {
		t.Fatal(err)
	}
	if msg.Metadata.Get(MetaOffset) != "1" || msg.Metadata.Get(MetaSeq) != "1" || msg.Metadata.Get(MetaEpoch) == "" {
		t.Fatalf("metadata after publish: %v", msg.Metadata)
	}
	// The payload is now the committed fact, offset and epoch included.
	var committed domain.MessageBroadcast
	if err := json.Unmarshal(msg.Payload, &committed); err != nil || committed.Offset != 1 || committed.Epoch != msg.Metadata.Get(MetaEpoch) || string(committed.Data) != `{"k":1}` {
		t.Fatalf("payload after publish: %s (%v)", msg.Payload, err)
	}
	// A message made by NewMessage from a fact publishes the same way.
	own, err := NewMessage(broadcast("a", "x", `{"k":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Publisher().Publish(Topic, own); err != nil || own.Metadata.Get(MetaOffset) != "2" {
		t.Fatalf("NewMessage publish: %v, metadata %v", err, own.Metadata)
	}
	bad := message.NewMessage("u2", []byte(`{}`))
	bad.Metadata.Set(MetaName, "no.such.event.v1")
	if err := l.Publisher().Publish(Topic, bad); err == nil {
		t.Fatal("unknown event name accepted")
	}
	evs, err := l.Events(context.Background(), domain.AuditQuery{})
	if err != nil || len(evs) != 2 {
		t.Fatalf("events %v %v", evs, err)
	}
	if mb := evs[0].Fact.(*domain.MessageBroadcast); string(mb.Data) != `{"k":1}` {
		t.Fatalf("data read back: %s", mb.Data)
	}
}

// TestAppendsAndPublishesShareACommit commits, in one transaction, an
// Append of two facts (which builds no messages) and then a Publish of one
// message: the published message gets its own fact's payload and sequence,
// not the first of the batch, and each event keeps the UUID it came with.
func TestAppendsAndPublishesShareACommit(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	msg, err := NewMessage(broadcast("a", "x", `"published"`))
	if err != nil {
		t.Fatal(err)
	}
	appended := &appendReq{facts: []domain.Fact{broadcast("a", "x", `"one"`), broadcast("a", "x", `"two"`)}, uuids: []string{"u-one", "u-two"}, done: make(chan struct{})}
	f, err := FactOf(msg)
	if err != nil {
		t.Fatal(err)
	}
	published := &appendReq{facts: []domain.Fact{f}, uuids: []string{msg.UUID}, msgs: []*message.Message{msg}, done: make(chan struct{})}
	// The writer is idle, waiting for requests: this is the batch it would
	// take if both were queued while it committed.
	l.commit([]*appendReq{appended, published})
	if appended.err != nil || published.err != nil {
		t.Fatalf("commit: %v, %v", appended.err, published.err)
	}
	var committed domain.MessageBroadcast
	if err := json.Unmarshal(msg.Payload, &committed); err != nil || string(committed.Data) != `"published"` || committed.Offset != 3 {
		t.Fatalf("published message's payload %s (%v)", msg.Payload, err)
	}
	if msg.Metadata.Get(MetaSeq) != "3" || msg.Metadata.Get(MetaOffset) != "3" {
		t.Fatalf("published message's metadata %v", msg.Metadata)
	}
	rows, err := l.wdb.Query(`SELECT uuid FROM events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var uuids []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			t.Fatal(err)
		}
		uuids = append(uuids, u)
	}
	want := []string{"u-one", "u-two", msg.UUID}
	if !slices.Equal(uuids, want) || rows.Err() != nil {
		t.Fatalf("stored UUIDs %v (%v), want %v", uuids, rows.Err(), want)
	}
	// A Subscriber delivers each event in a message with that UUID.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	delivered, err := l.Subscriber(SubscriberConfig{}).Subscribe(ctx, Topic)
	if err != nil {
		t.Fatal(err)
	}
	uuids = uuids[:0]
	for range want {
		m := <-delivered
		uuids = append(uuids, m.UUID)
		m.Ack()
	}
	if !slices.Equal(uuids, want) {
		t.Fatalf("delivered UUIDs %v, want %v", uuids, want)
	}
}

func TestReadOnlyOpen(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(context.Background(), Config{Path: filepath.Join(dir, "missing.db"), ReadOnly: true}); err == nil {
		t.Fatal("read-only open of a missing file succeeded")
	}
	path := filepath.Join(dir, "log.db")
	w := mustOpen(t, path)
	w.Append(context.Background(), broadcast("a", "x", "1"))
	r, err := Open(context.Background(), Config{Path: path, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if ms, err := r.Messages(context.Background(), "a", "x", domain.HistoryQuery{}); err != nil || len(ms) != 1 {
		t.Fatalf("read beside the writer: %v %v", ms, err)
	}
	if _, err := r.Append(context.Background(), broadcast("a", "x", "2")); err == nil {
		t.Fatal("append on a read-only log succeeded")
	}
}

// undo0005 takes a file back to before migration 0005, as a fazt before it
// left it: broadcasts in the index by channel, and no trimmed_broadcasts.
const undo0005 = `DROP TABLE trimmed_broadcasts; DROP INDEX events_app_channel;
	CREATE INDEX events_app_channel ON events (app, channel, seq) WHERE channel <> '';
	DELETE FROM schema_migrations WHERE version = 5;`

// TestOpenKeepsToItsSchema: a file that an older fazt wrote is brought up
// to date by a writer's open, and refused by a read-only one, which does
// not migrate and would not find what it reads; a file of a newer schema
// is refused by both, since this fazt may misread it (before 0004, a
// broadcast wrote its channel's head, and a fazt that believed the row
// would hand out offsets twice).
func TestOpenKeepsToItsSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	l := mustOpen(t, path)
	broadcasts(t, l, "a", "x", 3, 0)
	l.Close()
	alter := func(stmts string) {
		t.Helper()
		db, err := sql.Open("sqlite3", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, stmts); err != nil {
			t.Fatal(err)
		}
	}
	open := func(readOnly bool) error {
		l, err := Open(ctx, Config{Path: path, ReadOnly: readOnly})
		if err == nil {
			l.Close()
		}
		return err
	}

	// As a fazt before 0004 left it: its writer kept the row's head.
	alter(undo0005 + `DROP VIEW channel_heads; ALTER TABLE channels RENAME COLUMN head_floor TO head;
		DELETE FROM schema_migrations WHERE version = 4; UPDATE channels SET head = 3`)
	if err := open(true); err == nil || !strings.Contains(err.Error(), "older than this fazt's") {
		t.Fatalf("read-only open of an older schema: %v", err)
	}
	l = mustOpen(t, path)
	if info, err := l.Channel(ctx, "a", "x"); err != nil || info.Head != 3 {
		t.Fatalf("after the upgrade: head %d (%v), want 3", info.Head, err)
	}
	if evs := broadcasts(t, l, "a", "x", 1, 0); evs[0].Fact.(*domain.MessageBroadcast).Offset != 4 {
		t.Fatalf("after the upgrade: offset %d, want 4", evs[0].Fact.(*domain.MessageBroadcast).Offset)
	}
	l.Close()
	if err := open(true); err != nil {
		t.Fatalf("read-only open after the upgrade: %v", err)
	}

	alter(`INSERT INTO schema_migrations (version, name, applied) VALUES (1000, 'from a newer fazt', 0)`)
	for _, readOnly := range []bool{false, true} {
		if err := open(readOnly); err == nil || !strings.Contains(err.Error(), "newer than this fazt's") {
			t.Fatalf("open (read-only %v) of a newer schema: %v", readOnly, err)
		}
	}
}

// logMetric reads one of the log's metrics from the process's registry.
// The metrics are the process's, shared by the package's tests, so a test
// compares what it reads with what it read before.
func logMetric(t *testing.T, series string) float64 {
	t.Helper()
	v, ok := promtext.Value(testutil.Metrics(), series)
	if !ok {
		t.Fatalf("no %s in /metrics", series)
	}
	return v
}

// TestMetricsCountCommits: appends that queue while the writer waits are
// committed together and counted so. First an append the writer took
// alone, then three queued behind it (five events) in one commit. Then a
// batch that holds an append too big for the file: the batch fails, its
// appends are tried one at a time, and only the big one fails and is
// counted. Retention's transactions are not appends' and are not counted.
func TestMetricsCountCommits(t *testing.T) {
	ctx := context.Background()
	l := mustOpenConfig(t, Config{Path: filepath.Join(t.TempDir(), "log.db"), MaxPages: 200})
	series := []string{"fazt_log_commit_seconds_count", "fazt_log_events_total", "fazt_log_failed_appends_total"}
	read := func() []float64 {
		out := make([]float64, len(series))
		for i, s := range series {
			out[i] = logMetric(t, s)
		}
		return out
	}
	check := func(what string, before []float64, want ...float64) {
		t.Helper()
		for i, now := range read() {
			if now-before[i] != want[i] {
				t.Errorf("%s: %s went up by %v, want %v", what, series[i], now-before[i], want[i])
			}
		}
	}
	before := read()
	errs := queued(t, l, []domain.Fact{broadcast("a", "x", "1")},
		[]domain.Fact{broadcast("a", "x", "2"), broadcast("a", "y", "3"), &domain.ClientConnected{App: "a", Client: "c"}},
		[]domain.Fact{broadcast("a", "x", "4")},
		[]domain.Fact{broadcast("a", "y", "5")})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	check("one append, then three queued behind it", before, 2, 6, 0)

	before = read()
	big := broadcast("a", "x", `"`+strings.Repeat("x", 1<<20)+`"`) // more than the file's 200 pages
	errs = queued(t, l, []domain.Fact{broadcast("a", "x", "6")},
		[]domain.Fact{broadcast("a", "x", "7")}, []domain.Fact{big}, []domain.Fact{broadcast("a", "y", "8")})
	if errs[0] != nil || errs[1] != nil || errs[2] == nil || errs[3] != nil {
		t.Fatalf("a batch with an append too big for the file: %v, want only the third to fail", errs)
	}
	check("a failed batch, tried one append at a time", before, 3, 3, 1)

	before = read()
	if _, err := l.TrimChannel(ctx, "a", "x", RetentionPolicy{MaxMessages: 1}, time.Now(), 10); err != nil {
		t.Fatal(err)
	}
	check("retention", before, 0, 0, 0)
}

// queued appends each of appends in order, the first taken by the writer
// alone and the rest queued behind it while the writer waits for its
// connection, which a transaction of the test's holds; then it lets the
// writer go and returns each append's error.
func queued(t *testing.T, l *Log, appends ...[]domain.Fact) []error {
	t.Helper()
	ctx := context.Background()
	held, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- l.WriteTx(ctx, func(*sql.Tx) error { close(held); <-release; return nil })
	}()
	<-held
	errs := make([]error, len(appends))
	var wg sync.WaitGroup
	add := func(i int) {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = l.Append(ctx, appends[i]...) }()
	}
	waits := l.wdb.Stats().WaitCount
	add(0)
	until(t, "the writer waits with the first append", func() bool { return l.wdb.Stats().WaitCount > waits })
	for i := 1; i < len(appends); i++ {
		add(i)
	}
	until(t, "the others are queued", func() bool { return len(l.reqs) == len(appends)-1 })
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	return errs
}

// until waits up to 10 s for cond, checking it every millisecond.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
	}
}

// TestFullDiskFailsPublishesClearly fills a database capped at a few pages,
// as a full disk would: appends then fail at once with an unavailable error
// naming the cause, nothing half-written is visible, and the log keeps
// working for reads.
func TestFullDiskFailsPublishesClearly(t *testing.T) {
	l, err := Open(context.Background(), Config{Path: filepath.Join(t.TempDir(), "full.db"), MaxPages: 40})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	failedBefore := logMetric(t, "fazt_log_failed_appends_total")
	big := `"` + strings.Repeat("x", 3000) + `"`
	var okCount int
	var failure error
	var failed *domain.MessageBroadcast
	for i := 0; i < 1000; i++ {
		mb := broadcast("a", "x", big)
		if _, err := l.Append(ctx, mb); err != nil {
			failure, failed = err, mb
			break
		}
		okCount++
	}
	if failure == nil {
		t.Fatal("a 40-page database took 1000 messages of 3 KB")
	}
	if domain.CodeOf(failure) != domain.CodeUnavailable || !strings.Contains(failure.Error(), "full") {
		t.Fatalf("failure %q (code %s), want unavailable naming the full disk", failure, domain.CodeOf(failure))
	}
	// The failed fact comes back as it went: no offset assigned, so that
	// the same fact tried again fails for the same reason.
	if failed.Offset != 0 || failed.Epoch != "" {
		t.Fatalf("failed broadcast keeps offset %d, epoch %q", failed.Offset, failed.Epoch)
	}
	if _, err := l.Append(ctx, failed); domain.CodeOf(err) != domain.CodeUnavailable {
		t.Fatalf("the failed broadcast again: %v, want unavailable", err)
	}

	if n := logMetric(t, "fazt_log_failed_appends_total") - failedBefore; n != 2 {
		t.Fatalf("%v failed appends counted, want 2", n)
	}
	// What committed before is intact and contiguous; nothing of the failed
	// append is visible.
	ms, err := l.Messages(ctx, "a", "x", domain.HistoryQuery{})
	if err != nil || len(ms) != okCount || (okCount > 0 && ms[okCount-1].Offset != uint64(okCount)) {
		t.Fatalf("after the failure: %d messages (%v), want %d", len(ms), err, okCount)
	}
	if l.Head() != uint64(okCount) {
		t.Fatalf("head %d, want %d", l.Head(), okCount)
	}
	// Small appends that fit still go through, with the next offset.
	if _, err := l.Append(ctx, broadcast("a", "y", "1")); err != nil && domain.CodeOf(err) != domain.CodeUnavailable {
		t.Fatalf("small append after full: %v", err)
	}
	// The log says it is failing, since its first failure, until a
	// commit succeeds (the small one may have).
	if _, err := l.Append(ctx, failed); domain.CodeOf(err) != domain.CodeUnavailable {
		t.Fatalf("the failed broadcast a third time: %v, want unavailable", err)
	}
	since, ferr := l.Failing()
	if ferr == nil || !strings.Contains(ferr.Error(), "full") || since.IsZero() || time.Since(since) < 0 {
		t.Fatalf("while full: failing %v since %v", ferr, since)
	}
	// Still full, the writer's own probe (every 2 s while failing, with
	// nothing appended) fails as an append would: it takes a new page.
	// Its failure is SQLite's own text, where an append's says what it
	// inserted.
	time.Sleep(probeEvery + probeEvery/2)
	if again, err := l.Failing(); err == nil || err.Error() != "database or disk is full" || !again.Equal(since) {
		t.Fatalf("still full, after a probe: failing %v since %v, want the probe's failure since %v", err, again, since)
	}
	// Room again (the disk freed): the probe ends the failure, and
	// leaves nothing behind; appends go through.
	if _, err := l.wdb.Exec("PRAGMA max_page_count = 1000000"); err != nil {
		t.Fatal(err)
	}
	until(t, "the probe's end of the failure", func() bool { _, err := l.Failing(); return err == nil })
	if probed, ok, err := l.Setting(ctx, "writer_probe"); err != nil || ok {
		t.Fatalf("the probe left a setting: %q, %v, %v", probed, ok, err)
	}
	if _, err := l.Append(ctx, broadcast("a", "x", big)); err != nil {
		t.Fatalf("an append with room again: %v", err)
	}
}

func TestDurabilityFullSetsSynchronous(t *testing.T) {
	for _, tc := range []struct {
		d    Durability
		want int
	}{{DurabilityNormal, 1}, {DurabilityFull, 2}} {
		l, err := Open(context.Background(), Config{Path: filepath.Join(t.TempDir(), "d.db"), Durability: tc.d})
		if err != nil {
			t.Fatal(err)
		}
		var got int
		if err := l.wdb.QueryRow("PRAGMA synchronous").Scan(&got); err != nil || got != tc.want {
			t.Errorf("%s: synchronous = %d (%v), want %d", tc.d, got, err, tc.want)
		}
		var mode string
		l.wdb.QueryRow("PRAGMA journal_mode").Scan(&mode)
		if mode != "wal" {
			t.Errorf("%s: journal_mode %s, want wal", tc.d, mode)
		}
		l.Close()
	}
	if _, err := Open(context.Background(), Config{Path: filepath.Join(t.TempDir(), "d.db"), Durability: "maybe"}); err == nil {
		t.Error("durability maybe accepted")
	}
}

// TestSubscribedCarriesHead checks that the log stamps a subscription with
// its channel's head and epoch at the event's place in the log: in the
// same batch as broadcasts before and after it, on a channel known only
// from the file (after a reopen), and on a channel with no messages, which
// it does not create, until that channel's first broadcast.
func TestSubscribedCarriesHead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.db")
	ctx := context.Background()
	l := mustOpen(t, path)
	sub := func(channel string) *domain.ChannelSubscribed {
		return &domain.ChannelSubscribed{App: "app", Channel: channel, Client: "c1", Start: domain.Start{Mode: domain.StartLive}}
	}
	evs, err := l.Append(ctx, broadcast("app", "room", `1`), broadcast("app", "room", `2`), sub("room"), broadcast("app", "room", `3`), sub("empty"))
	if err != nil {
		t.Fatal(err)
	}
	epoch := evs[0].Fact.(*domain.MessageBroadcast).Epoch
	if s := evs[2].Fact.(*domain.ChannelSubscribed); s.Head == nil || *s.Head != 2 || s.Epoch != epoch {
		t.Fatalf("room subscription stamped %v %q, want 2 %q", s.Head, s.Epoch, epoch)
	}
	if s := evs[4].Fact.(*domain.ChannelSubscribed); s.Head == nil || *s.Head != 0 || s.Epoch != "" {
		t.Fatalf("empty channel's subscription stamped %v %q, want 0 \"\"", s.Head, s.Epoch)
	}
	if info, err := l.Channel(ctx, "app", "empty"); err != nil || info.Epoch != "" || info.Head != 0 {
		t.Fatalf("a subscription created channel empty: %+v %v", info, err)
	}
	// The stamp is in the stored event, as read back.
	stored, err := l.Events(ctx, domain.AuditQuery{App: "app", Types: []string{(&domain.ChannelSubscribed{}).EventName()}})
	if err != nil || len(stored) != 2 {
		t.Fatalf("stored subscriptions: %v %v", stored, err)
	}
	if s := stored[0].Fact.(*domain.ChannelSubscribed); s.Head == nil || *s.Head != 2 {
		t.Fatalf("stored stamp %v", s.Head)
	}
	// Another subscribe still finds no stream; a first broadcast starts
	// one, which the next subscribe sees.
	evs, err = l.Append(ctx, sub("empty"))
	if err != nil {
		t.Fatal(err)
	}
	if s := evs[0].Fact.(*domain.ChannelSubscribed); s.Head == nil || *s.Head != 0 || s.Epoch != "" {
		t.Fatalf("empty channel's second subscription stamped %v %q, want 0 \"\"", s.Head, s.Epoch)
	}
	evs, err = l.Append(ctx, broadcast("app", "empty", `1`), sub("empty"))
	if err != nil {
		t.Fatal(err)
	}
	first := evs[0].Fact.(*domain.MessageBroadcast)
	if first.Offset != 1 || first.Epoch == "" || first.Epoch == epoch {
		t.Fatalf("first broadcast to empty at offset %d epoch %q, want 1 and a new epoch", first.Offset, first.Epoch)
	}
	if s := evs[1].Fact.(*domain.ChannelSubscribed); s.Head == nil || *s.Head != 1 || s.Epoch != first.Epoch {
		t.Fatalf("subscription after the first broadcast stamped %v %q, want 1 %q", s.Head, s.Epoch, first.Epoch)
	}
	if info, err := l.Channel(ctx, "app", "empty"); err != nil || info.Epoch != first.Epoch || info.Head != 1 {
		t.Fatalf("channel empty after its first broadcast: %+v %v", info, err)
	}
	l.Close()

	// After a reopen the head comes from the file.
	l = mustOpen(t, path)
	evs, err = l.Append(ctx, sub("room"))
	if err != nil {
		t.Fatal(err)
	}
	if s := evs[0].Fact.(*domain.ChannelSubscribed); s.Head == nil || *s.Head != 3 || s.Epoch != epoch {
		t.Fatalf("after reopen stamped %v %q, want 3 %q", s.Head, s.Epoch, epoch)
	}
}

// TestReopenKeepsCommitTimesInOrder reopens a log whose last event was
// committed at a time the wall clock has not reached (it was set back
// since): the next commit is stamped no earlier, so that history by time
// and by offset still agree.
func TestReopenKeepsCommitTimesInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.db")
	ctx := context.Background()
	l, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, broadcast("app", "x", "1"), broadcast("app", "x", "2")); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour).UnixMilli()
	if _, err := l.wdb.ExecContext(ctx, `UPDATE events SET ts = ? WHERE seq = 2`, later); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := mustOpen(t, path)
	evs, err := l2.Append(ctx, broadcast("app", "x", "3"))
	if err != nil {
		t.Fatal(err)
	}
	if evs[0].Seq != 3 || evs[0].Time != later {
		t.Fatalf("after reopen: seq %d at %d, want 3 at %d", evs[0].Seq, evs[0].Time, later)
	}
}

// TestHeadCacheIsBounded appends to many more channels than the writer
// keeps heads of: the cache stays within its size, and channels whose
// head was dropped from it continue their offsets and epochs from the file.
func TestHeadCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	l, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "log.db"), HeadCache: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const channels, rounds = 40, 3
	epochs := map[string]string{}
	for r := 1; r <= rounds; r++ {
		for c := 0; c < channels; c++ {
			ch := fmt.Sprintf("room-%d", c)
			evs, err := l.Append(ctx,
				&domain.ChannelSubscribed{App: "app", Channel: ch, Client: fmt.Sprintf("c%d-%d", c, r)},
				broadcast("app", ch, "1"))
			if err != nil {
				t.Fatal(err)
			}
			sub, mb := evs[0].Fact.(*domain.ChannelSubscribed), evs[1].Fact.(*domain.MessageBroadcast)
			if *sub.Head != uint64(r-1) || mb.Offset != uint64(r) {
				t.Fatalf("%s round %d: subscribed at head %d, broadcast at offset %d", ch, r, *sub.Head, mb.Offset)
			}
			if r == 1 {
				epochs[ch] = mb.Epoch
			} else if mb.Epoch != epochs[ch] || sub.Epoch != epochs[ch] {
				t.Fatalf("%s round %d: epochs %q and %q, want %q", ch, r, sub.Epoch, mb.Epoch, epochs[ch])
			}
			if n := len(l.heads); n > 8 {
				t.Fatalf("%d heads cached, want at most 8", n)
			}
		}
	}
}

// TestHeadsAfterARestart: a log that starts with no more channels than its
// head cache holds loads them all, and takes a channel it does not hold
// for one without history; one that starts with more reads each from the
// file. Either way every channel goes on from its offset and epoch, and a
// new one starts at 1.
func TestHeadsAfterARestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	epochs := map[string]string{}
	l, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	for c := range 6 {
		ch := fmt.Sprintf("room-%d", c)
		evs := broadcasts(t, l, "app", ch, 1, 0)
		epochs[ch] = evs[0].Fact.(*domain.MessageBroadcast).Epoch
	}
	l.Close()
	for i, cache := range []int{8, 6, 5, 2} {
		func() { // each open closed before the next, and on a failure
			l, err := Open(ctx, Config{Path: path, HeadCache: cache})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if want := cache >= len(epochs); l.allHeads != want {
				t.Fatalf("cache of %d for %d channels: all heads loaded %v, want %v", cache, len(epochs), l.allHeads, want)
			}
			for c := range 6 {
				ch := fmt.Sprintf("room-%d", c)
				evs, err := l.Append(ctx, &domain.ChannelSubscribed{App: "app", Channel: ch, Client: "c"}, broadcast("app", ch, "1"))
				if err != nil {
					t.Fatal(err)
				}
				sub, mb := evs[0].Fact.(*domain.ChannelSubscribed), evs[1].Fact.(*domain.MessageBroadcast)
				// One broadcast at the start and one per open before this.
				want := uint64(i + 2)
				if *sub.Head != want-1 || mb.Offset != want || sub.Epoch != epochs[ch] || mb.Epoch != epochs[ch] {
					t.Fatalf("cache of %d, %s: subscribed at head %d epoch %q, broadcast at %d epoch %q; want head %d, offset %d, epoch %q",
						cache, ch, *sub.Head, sub.Epoch, mb.Offset, mb.Epoch, want-1, want, epochs[ch])
				}
			}
			evs, err := l.Append(ctx, &domain.ChannelSubscribed{App: "app", Channel: fmt.Sprintf("new-%d", cache), Client: "c"})
			if err != nil || *evs[0].Fact.(*domain.ChannelSubscribed).Head != 0 {
				t.Fatalf("cache of %d: a new channel: %v, %v", cache, evs, err)
			}
		}()
	}
}

// TestTailKeepsToItsByteBudget commits 200 broadcasts of 1 KB into a log
// whose tail may hold 16 KB: the tail holds no more than that (and at
// least the newest event), and a subscriber from the start still gets all
// 200 in order, with their data, the older ones read back from the file.
func TestTailKeepsToItsByteBudget(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "log.db"), TailBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	data := `{"text":"` + strings.Repeat("x", 1000) + `"}`
	for i := 0; i < 20; i++ {
		facts := make([]domain.Fact, 10)
		for j := range facts {
			facts[j] = broadcast("app", "big", data)
		}
		if _, err := l.Append(ctx, facts...); err != nil {
			t.Fatal(err)
		}
	}
	l.tail.mu.Lock()
	held, bytes, oldest := 0, l.tail.bytes, l.tail.oldest
	for _, r := range l.tail.ring {
		if r != nil {
			held++
		}
	}
	l.tail.mu.Unlock()
	if bytes > 16<<10 || held == 0 || held != int(l.Head()-oldest+1) || held >= 200 {
		t.Fatalf("tail holds %d events (%d bytes) from %d to %d", held, bytes, oldest, l.Head())
	}
	sub := l.Subscriber(SubscriberConfig{})
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, Topic)
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(1); want <= 200; want++ {
		var m *message.Message
		select {
		case m = <-msgs:
		case <-time.After(10 * time.Second):
			t.Fatalf("no event %d", want)
		}
		ev, err := EventOf(m)
		if err != nil {
			t.Fatal(err)
		}
		mb, ok := ev.Fact.(*domain.MessageBroadcast)
		if ev.Seq != want || !ok || mb.Offset != want || string(mb.Data) != data {
			t.Fatalf("event %d: seq %d %T", want, ev.Seq, ev.Fact)
		}
		m.Ack()
	}
}

// TestTailAccountsForWhatItHolds commits batches of broadcasts of mixed
// sizes into a tail of 8 slots and 20,000 bytes, so that both limits take
// turns: after each commit the tail holds exactly the events from its
// oldest to its newest, its byte count is the sum of theirs, and it is
// within its budget unless it holds only the newest event.
func TestTailAccountsForWhatItHolds(t *testing.T) {
	ctx := context.Background()
	l, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "log.db"), TailSize: 8, TailBytes: 20000})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sizes := []int{10, 3000, 200, 5000, 50, 1000, 9000, 20, 400}
	for i := 0; i < 60; i++ {
		facts := make([]domain.Fact, 1+i%3)
		for j := range facts {
			facts[j] = broadcast("app", "mixed", `"`+strings.Repeat("x", sizes[(i+j)%len(sizes)])+`"`)
		}
		if _, err := l.Append(ctx, facts...); err != nil {
			t.Fatal(err)
		}
		tl := l.tail
		tl.mu.Lock()
		sum, held := 0, 0
		for _, r := range tl.ring {
			if r == nil {
				continue
			}
			if r.ev.Seq < tl.oldest || r.ev.Seq > tl.head {
				tl.mu.Unlock()
				t.Fatalf("commit %d: the tail holds event %d outside %d..%d", i, r.ev.Seq, tl.oldest, tl.head)
			}
			sum += r.size()
			held++
		}
		bytes, oldest, head := tl.bytes, tl.oldest, tl.head
		tl.mu.Unlock()
		if held != int(head-oldest+1) || sum != bytes || bytes > 20000 && oldest != head {
			t.Fatalf("commit %d: %d events held for %d..%d, %d bytes counted for %d", i, held, oldest, head, bytes, sum)
		}
	}
}

// Once Append returns, Head counts what it committed, however the writer
// batched it with other appends: callers read Head right after appending
// (the start-up's catch-up, the audit retention's newest event).
func TestHeadIncludesWhatAppendReturned(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				evs, err := l.Append(ctx, broadcast("app", fmt.Sprintf("c%d", w), `{"i":1}`))
				if err != nil {
					t.Error(err)
					return
				}
				if head := l.Head(); head < evs[0].Seq {
					t.Errorf("append %d of writer %d committed seq %d; Head then said %d", i, w, evs[0].Seq, head)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestAppendQueuedAfterTheWriterStoppedReturns: an Append that passed its
// check for Close just before Close began, and queued its request after
// the writer's last look at the queue, gets ErrClosed instead of waiting
// for ever. The interleaving is too narrow to hit by timing, so the test
// stops the writer itself and leaves the log looking open.
func TestAppendQueuedAfterTheWriterStoppedReturns(t *testing.T) {
	l, err := Open(context.Background(), Config{Path: filepath.Join(t.TempDir(), "log.db")})
	if err != nil {
		t.Fatal(err)
	}
	closed := l.closed
	l.once.Do(l.close)
	l.wg.Wait() // the writer has drained the queue and returned
	l.closed = make(chan struct{})
	defer func() { l.closed = closed; l.Close() }()

	res := make(chan error, 1)
	go func() {
		_, err := l.Append(context.Background(), broadcast("a", "c", "1"))
		res <- err
	}()
	select {
	case err := <-res:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("append after the writer stopped: %v, want ErrClosed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("append still waiting for a writer that stopped")
	}
}

// Commits reach the database file from the checkpointer, beside the
// writer, long before the WAL is big enough for the writer to checkpoint
// itself (64 MiB): the file grows while appends go on.
func TestCheckpointsRunBesideTheWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.db")
	l := mustOpen(t, path)
	size := func() int64 {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	data := `"` + strings.Repeat("x", 1000) + `"`
	for i := range 200 { // about 60 pages of WAL
		if _, err := l.Append(context.Background(), broadcast("a", fmt.Sprintf("c%d", i), data)); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); size() <= before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the database file is still %d bytes 10s after 200 appends: nothing was checkpointed", before)
		}
	}
}

// TestQuietLogEmptiesItsWAL grows the WAL file past WALKeep while a
// reader's snapshot holds it, and checks that the checkpointer leaves it
// while the reader uses it, empties it once the reader is done and the
// log is quiet, with no commit to prompt it, and that nothing committed
// is lost.
func TestQuietLogEmptiesItsWAL(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	l, err := Open(ctx, Config{Path: path, WALKeep: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	open := true
	t.Cleanup(func() {
		if open {
			l.Close()
		}
	})
	walSize := func() int64 { return mustWALSize(t, l) }
	count := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) int {
		t.Helper()
		var n int
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	data := `"` + strings.Repeat("x", 1000) + `"`
	appendSpread(t, l, 10, data)
	// A reader's snapshot: no checkpoint may copy what is committed after
	// it, so the WAL cannot start over or be emptied while it lasts.
	rtx, err := l.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := count(rtx); n != 10 {
		t.Fatalf("the reader sees %d messages, want 10", n)
	}
	appendSpread(t, l, 290, data)
	grown := walSize()
	if grown <= 64<<10 {
		t.Fatalf("300 appends left a WAL file of %d bytes: the test needs more than 64 KiB", grown)
	}
	time.Sleep(3 * checkpointEvery) // quiet, and long enough to copy
	if n := walSize(); n < grown {
		t.Fatalf("the WAL file went from %d to %d bytes while a reader used it", grown, n)
	}
	if n := count(rtx); n != 10 {
		t.Fatalf("the reader sees %d messages after the wait, want 10", n)
	}
	if err := rtx.Rollback(); err != nil {
		t.Fatal(err)
	}

	// With the reader gone, a later quiet period empties it: no commit
	// is needed to try again.
	for deadline := time.Now().Add(20 * time.Second); walSize() > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the WAL file is still %d bytes 20s after the reader ended", walSize())
		}
	}
	if n := count(l.rdb); n != 300 {
		t.Fatalf("%d messages after the WAL was emptied, want 300", n)
	}
	if _, err := l.Append(ctx, broadcast("a", "last", data)); err != nil {
		t.Fatalf("append after the WAL was emptied: %v", err)
	}
	open = false
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := mustOpen(t, path)
	if n := count(l2.rdb); n != 301 {
		t.Fatalf("%d messages after a reopen, want 301", n)
	}
	if c, err := l2.Channel(ctx, "a", "last"); err != nil || c.Head != 1 {
		t.Fatalf("channel last after a reopen: %+v, %v; want head 1", c, err)
	}
}

// TestCloseLeavesOnlyTheDatabaseFile: a log closed with nothing else
// using the file leaves no WAL or shared-memory file beside it, and
// everything it committed is in the database file.
func TestCloseLeavesOnlyTheDatabaseFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log.db")
	l, err := Open(context.Background(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	broadcasts(t, l, "a", "c", 20, 0)
	if _, err := l.Messages(context.Background(), "a", "c", domain.HistoryQuery{}); err != nil {
		t.Fatal(err) // the read pool has a connection open
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if names := files(t, dir); !slices.Equal(names, []string{"log.db"}) {
		t.Fatalf("files after Close: %v, want only log.db", names)
	}
	l2 := mustOpen(t, path)
	if c, err := l2.Channel(context.Background(), "a", "c"); err != nil || c.Head != 20 {
		t.Fatalf("channel after a reopen: %+v, %v; want head 20", c, err)
	}
}

// TestWALEmptiedUnderLightLoad: after a burst, a log that keeps
// committing now and then, never quiet for a period, still empties the
// WAL file the burst grew, since what the WAL holds now is small.
func TestWALEmptiedUnderLightLoad(t *testing.T) {
	ctx := context.Background()
	const keep = 2 << 20
	l := mustOpenConfig(t, Config{Path: filepath.Join(t.TempDir(), "log.db"), WALKeep: keep})
	walSize := func() int64 { return mustWALSize(t, l) }
	appendSpread(t, l, 600, `"`+strings.Repeat("x", 2000)+`"`)
	if n := walSize(); n <= keep {
		t.Fatalf("the burst left a WAL file of %d bytes: the test needs more than %d", n, keep)
	}
	// A commit every 250 ms: about 4 frames each, far under a quarter of
	// WALKeep per checkpoint period, and never a quiet period.
	for deadline := time.Now().Add(20 * time.Second); walSize() > keep; {
		if time.Now().After(deadline) {
			t.Fatalf("the WAL file is still %d bytes after 20s of light load", walSize())
		}
		if _, err := l.Append(ctx, broadcast("a", "steady", "1")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if c, err := l.Channel(ctx, "a", "c49"); err != nil || c.Head != 12 {
		t.Fatalf("channel c49 after the WAL was emptied: %+v, %v; want head 12", c, err)
	}
}

// TestWALEmptiedUnderSteadyLoad: after a burst, a log that keeps
// committing more than a quarter of WALKeep per checkpoint period, but
// little for the file the burst left, gets the file emptied too.
func TestWALEmptiedUnderSteadyLoad(t *testing.T) {
	ctx := context.Background()
	const keep = 256 << 10
	l := mustOpenConfig(t, Config{Path: filepath.Join(t.TempDir(), "log.db"), WALKeep: keep})
	walSize := func() int64 { return mustWALSize(t, l) }
	data := `"` + strings.Repeat("x", 2000) + `"`
	if _, err := l.Append(ctx, broadcast("a", "c0", data)); err != nil {
		t.Fatal(err)
	}
	// A reader's snapshot holds the WAL while the burst grows it, however
	// slowly the machine runs the burst; then it ends.
	rtx, err := l.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rtx.Rollback() // if the burst fails
	var n int
	if err := rtx.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the reader sees %d messages (%v), want 1", n, err)
	}
	appendSpread(t, l, 600, data)
	heads := map[string]uint64{"c0": 1}
	for i := range 600 {
		heads[fmt.Sprintf("c%d", i%50)]++
	}
	if err := rtx.Rollback(); err != nil {
		t.Fatal(err)
	}
	burst := walSize()
	if burst <= 32*keep {
		t.Fatalf("the burst left a WAL file of %d bytes: the test needs more than %d", burst, 32*keep)
	}
	// Every 250 ms, one commit of eight broadcasts to eight channels:
	// more than keep/4 a checkpoint period (the old rule, under keep/4
	// alone, never empties the file), and far under a sixteenth of it.
	// A machine that stalls a commit for a whole period lets the quiet
	// rule empty the file instead, which would prove nothing.
	commits := 0
	var gap time.Duration
	last := time.Now()
	for deadline := time.Now().Add(30 * time.Second); walSize() > burst/4; commits++ {
		if time.Now().After(deadline) {
			t.Fatalf("the WAL file is still %d bytes after 30s of steady load (%d commits)", walSize(), commits)
		}
		batch := make([]domain.Fact, 8)
		for k := range batch {
			ch := fmt.Sprintf("c%d", (commits*len(batch)+k)%50)
			batch[k] = broadcast("a", ch, data)
			heads[ch]++
		}
		if _, err := l.Append(ctx, batch...); err != nil {
			t.Fatal(err)
		}
		gap, last = max(gap, time.Since(last)), time.Now()
		time.Sleep(250 * time.Millisecond)
	}
	if gap >= checkpointEvery {
		t.Skipf("a commit came %v after the one before: the quiet rule may have emptied the file", gap)
	}
	for _, ch := range []string{"c0", "c1", "c49"} {
		if c, err := l.Channel(ctx, "a", ch); err != nil || c.Head != heads[ch] {
			t.Fatalf("channel %s after the WAL was emptied: %+v, %v; want head %d", ch, c, err, heads[ch])
		}
	}
}

// TestLightWAL: the WAL counts as light below a quarter of WALKeep, or
// below a sixteenth of a larger file, and a run of light checkpoints
// counts only those that found the file over WALKeep and all of it
// copied.
func TestLightWAL(t *testing.T) {
	const frame, keep = 4096 + 24, 4 << 20
	for _, c := range []struct {
		frames int
		size   int64
		want   bool
	}{
		{0, 8 << 20, true},
		{100, 8 << 20, true},               // 412 KB
		{keep / 4 / frame, 8 << 20, true},  // just under 1 MiB
		{keep/4/frame + 1, 8 << 20, false}, // just over
		{keep/4/frame + 1, 16 << 20, false},
		{keep/4/frame + 1, 20 << 20, true},  // a sixteenth of the file is more
		{(4 << 20) / frame, 64 << 20, true}, // just under 4 MiB in a 64 MiB file
		{(4<<20)/frame + 1, 64 << 20, false},
		{16384, 64 << 20, false},             // a WAL the writer's own checkpoint copies
		{90 << 20 / frame, 128 << 20, false}, // a second of a saturated server
	} {
		if got := lightWAL(c.frames, frame, keep, c.size); got != c.want {
			t.Errorf("lightWAL(%d frames, file of %d bytes) = %v, want %v", c.frames, c.size, got, c.want)
		}
	}
	// all, light, big for each checkpoint, and the run after it.
	run := 0
	for i, c := range []struct {
		all, light, big bool
		want            int
	}{
		{true, true, false, 0}, // light, but the file is small: no run
		{true, true, false, 0}, // ... however long
		{true, true, true, 1},  // the file grew: the run starts here
		{true, true, true, 2},  // two in a row: empty it
		{false, true, true, 0}, // not all copied
		{true, true, true, 1},  // a run again
		{true, false, true, 0}, // a heavy period
		{true, true, true, 1},  // a run again
	} {
		if run = lightRunAfter(run, c.all, c.light, c.big); run != c.want {
			t.Errorf("checkpoint %d (all %v, light %v, big %v): run %d, want %d", i, c.all, c.light, c.big, run, c.want)
		}
	}
}

// mustWALSize is l's WAL file's size; the test fails if the file is not
// there, where Log.walSize would say 0 and an emptied WAL look the same.
func mustWALSize(t *testing.T, l *Log) int64 {
	t.Helper()
	fi, err := os.Stat(l.cfg.Path + "-wal")
	if err != nil {
		t.Fatalf("the WAL file: %v", err)
	}
	return fi.Size()
}

// TestSubscriptionEndedMidReadIsQuiet: a subscription whose context ends
// while it reads the file (a server stopping while a projection catches
// up) ends without logging the cancelled read as an error.
func TestSubscriptionEndedMidReadIsQuiet(t *testing.T) {
	var logged testutil.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logged, nil))
	// A tail of 4: the first events are read from the file.
	l := mustOpenConfig(t, Config{Path: filepath.Join(t.TempDir(), "log.db"), TailSize: 4, Logger: logger})
	for i := 0; i < 20; i++ {
		if _, err := l.Append(context.Background(), broadcast("app", "s", "1")); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sub := l.Subscriber(SubscriberConfig{})
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, Topic)
	if err != nil {
		t.Fatal(err)
	}
	for range msgs {
	}
	if strings.Contains(logged.String(), "level=ERROR") {
		t.Fatalf("logged:\n%s", logged.String())
	}
}

// TestOpenAFileNamedWithURICharacters opens logs whose file names hold
// '#', '?' and '%': each is the file of that very name, for writing and
// read-only alike (x#1.db opened a file x, without the read-only mode
// that came after the '#').
func TestOpenAFileNamedWithURICharacters(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"x#1.db", "y?mode=ro.db", "z%41.db"} {
		path := filepath.Join(dir, name)
		l := mustOpen(t, path)
		if _, err := l.Append(context.Background(), broadcast("app", "room", `1`)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		l.Close()
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s: the file is not there: %v", name, err)
		}
		ro := mustOpenConfig(t, Config{Path: path, ReadOnly: true})
		if info, err := ro.Channel(context.Background(), "app", "room"); err != nil || info.Head != 1 {
			t.Errorf("%s read-only: head %d, %v; want 1", name, info.Head, err)
		}
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), "-wal") && !strings.HasSuffix(e.Name(), "-shm") {
			names = append(names, e.Name())
		}
	}
	if want := []string{"x#1.db", "y?mode=ro.db", "z%41.db"}; !slices.Equal(names, want) {
		t.Errorf("files %v, want %v", names, want)
	}
}

// TestAClockBehindTheLogIsReported: a log whose last event is an hour
// ahead of the clock (the machine's clock ran ahead, then was set right)
// keeps that time for new events, as commit times never go back, and says
// so: a warning, once a minute at most, and the gauge
// fazt_log_clock_behind_seconds. Before, nothing told an operator why
// history by time put a day's events at one instant.
func TestAClockBehindTheLogIsReported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.db")
	l, err := Open(context.Background(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), broadcast("app", "x", "1")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	ahead := time.Now().Add(time.Hour).UnixMilli()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE events SET ts = ?`, ahead); err != nil {
		t.Fatal(err)
	}
	db.Close()

	logs := &testutil.SyncBuffer{}
	l = mustOpenConfig(t, Config{Path: path, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	for i := 0; i < 3; i++ {
		evs, err := l.Append(context.Background(), broadcast("app", "x", "2"))
		if err != nil || evs[0].Time != ahead {
			t.Fatalf("append %d: %v, time %d, want the log's %d", i, err, evs[0].Time, ahead)
		}
	}
	if n := strings.Count(logs.String(), "clock is behind the event log"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.String())
	}
	if behind := logMetric(t, "fazt_log_clock_behind_seconds"); behind < 3500 || behind > 3600 {
		t.Errorf("fazt_log_clock_behind_seconds %v, want about 3600", behind)
	}
	// The clock catching up (here, a log whose last time is now) clears it.
	fresh := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	if _, err := fresh.Append(context.Background(), broadcast("app", "x", "3")); err != nil {
		t.Fatal(err)
	}
	if behind := logMetric(t, "fazt_log_clock_behind_seconds"); behind != 0 {
		t.Errorf("fazt_log_clock_behind_seconds %v after a commit on time", behind)
	}
}

// A writer's open of another program's SQLite database (a wrong --db)
// refuses it, naming its tables, and leaves it as it was: no fazt table
// is added, and its journal mode is not switched to WAL. Before, the
// open adopted it, adding fazt's schema to it.
func TestOpenRefusesAnotherDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada')`); err != nil {
		t.Fatal(err)
	}
	l, err := Open(ctx, Config{Path: path})
	if err == nil {
		l.Close()
		t.Fatal("another program's database was opened as a log")
	}
	if !strings.Contains(err.Error(), "not a fazt event log") || !strings.Contains(err.Error(), "users") {
		t.Fatalf("open: %v; want it refused, naming its tables", err)
	}
	var tables int
	var mode string
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if tables != 1 || mode != "delete" {
		t.Fatalf("after the refusal: %d tables, journal mode %s; want 1, delete", tables, mode)
	}
}

// TestChannelHistoryIsOneSnapshot: a channel's head and first offset and
// its messages are read in one snapshot. While commits go on, a read of
// the newest messages ends at the head it reports, and none is before
// its first offset or past its head; read apart (Channel, then
// Messages), a commit between the two gave a message past the head.
// Bounded: 2,000 appends, and the reads until they end; every 100
// appends wait for a read, so that reads and commits interleave however
// fast either is.
func TestChannelHistoryIsOneSnapshot(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	ctx := context.Background()
	done := make(chan error, 1)
	var reads atomic.Int64
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) }) // the reads failed: the appends end too
	go func() {
		for i := range 2000 {
			if i%100 == 0 {
				for r := reads.Load(); reads.Load() == r; time.Sleep(100 * time.Microsecond) {
					select {
					case <-stop:
						done <- nil
						return
					default:
					}
				}
			}
			if _, err := l.Append(ctx, broadcast("a", "room", fmt.Sprint(i))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			// Once the commits are over, a read sees them all: no
			// connection of the pool kept an older snapshot.
			for range 4 {
				info, msgs, err := l.ChannelHistory(ctx, "a", "room", domain.HistoryQuery{Last: 1, Limit: 1}, false)
				if err != nil || info.Head != 2000 || len(msgs) != 1 || msgs[0].Offset != 2000 {
					t.Fatalf("after the appends: head %d, %v, %v; want 2000", info.Head, msgs, err)
				}
			}
			return
		default:
		}
		for _, q := range []domain.HistoryQuery{{Last: 3, Limit: 3}, {Limit: 1000}} {
			info, msgs, err := l.ChannelHistory(ctx, "a", "room", q, false)
			if err != nil {
				t.Fatal(err)
			}
			reads.Add(1)
			for _, m := range msgs {
				if m.Offset > info.Head || m.Offset < info.First {
					t.Fatalf("%+v: message %d outside first %d to head %d", q, m.Offset, info.First, info.Head)
				}
			}
			if q.Last > 0 && info.Head > 0 && (len(msgs) == 0 || msgs[len(msgs)-1].Offset != info.Head) {
				t.Fatalf("the newest messages end at %v, but the head is %d", msgs, info.Head)
			}
		}
	}
}

// A commit that fails for a damaged schema (a table gone) fails the log's
// health too, though publishes get internal for it, not unavailable; and
// the writer's probe, a write to another table that would pass, is not
// run for it: an append that succeeds ends the failure.
func TestADamagedSchemaFailsTheLogUntilAnAppendWorks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.db")
	l := mustOpen(t, path)
	ctx := context.Background()
	raw, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`ALTER TABLE messages RENAME TO messages_gone`); err != nil {
		t.Fatal(err)
	}
	_, err = l.Append(ctx, broadcast("a", "room", "1"))
	if err == nil || domain.CodeOf(err) == domain.CodeUnavailable {
		t.Fatalf("an append without its table: %v (code %s), want a failure not unavailable", err, domain.CodeOf(err))
	}
	since, ferr := l.Failing()
	if ferr == nil {
		t.Fatal("the log is not failing after a commit failed for its schema")
	}
	time.Sleep(probeEvery + probeEvery/2)
	if again, err := l.Failing(); err == nil || !again.Equal(since) || err.Error() != ferr.Error() {
		t.Fatalf("after a probe's time: failing %v since %v, want %v since %v", err, again, ferr, since)
	}
	if _, err := raw.Exec(`ALTER TABLE messages_gone RENAME TO messages`); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, broadcast("a", "room", "1")); err != nil {
		t.Fatalf("an append with its table back: %v", err)
	}
	if _, err := l.Failing(); err != nil {
		t.Fatalf("after an append worked: failing %v", err)
	}
}

// While another process holds the file's write lock past the wait
// (busyWaitMS), a batch of appends fails as one: each append is answered
// unavailable, and the batch is not tried again one append at a time,
// each of which would wait out the lock again (a batch of n took n+1
// waits, holding every append queued behind it). The appends gathered
// here come in one or two batches: the first may be taken alone.
func TestALockedFileFailsABatchAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.db")
	logs := &testutil.SyncBuffer{}
	l := mustOpenConfig(t, Config{Path: path, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if _, err := l.Append(context.Background(), broadcast("app", "x", "1")); err != nil {
		t.Fatal(err)
	}
	release := testutil.HoldWriteLock(t, path)
	const appends = 6
	errs := make(chan error, appends)
	for i := range appends {
		go func() {
			_, err := l.Append(context.Background(), broadcast("app", fmt.Sprint("c", i), "2"))
			errs <- err
		}()
	}
	for range appends {
		if err := <-errs; domain.CodeOf(err) != domain.CodeUnavailable {
			t.Errorf("an append while the lock is held elsewhere: %v, want unavailable", err)
		}
	}
	if strings.Contains(logs.String(), "one at a time") {
		t.Errorf("a batch that met the lock was tried again an append at a time:\n%s", logs.String())
	}
	release()
	if _, err := l.Append(context.Background(), broadcast("app", "x", "3")); err != nil {
		t.Fatalf("once the lock is gone: %v", err)
	}
}
