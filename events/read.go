package events

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/fazt-realtime/fazt/domain"
)

// MaxPage is the most rows one history or audit read returns.
const MaxPage = 10000

// reader is what a read runs its queries on: the pool of read
// connections, or one connection in a read transaction, whose snapshot
// makes what a call reads agree.
type reader interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Channel implements domain.History.
func (l *Log) Channel(ctx context.Context, app, channel string) (domain.ChannelInfo, error) {
	return channelOn(ctx, l.rdb, app, channel)
}

// ChannelHistory implements domain.History: a channel's head, epoch and
// first retained offset, and, unless none, the messages q asks for,
// read in one snapshot, so that no message is past the head or before
// the first offset, as they could be when a commit or a retention pass
// came between two reads.
func (l *Log) ChannelHistory(ctx context.Context, app, channel string, q domain.HistoryQuery, none bool) (info domain.ChannelInfo, msgs []domain.Message, err error) {
	conn, err := l.rdb.Conn(ctx)
	if err != nil {
		return info, nil, fmt.Errorf("read history: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return info, nil, fmt.Errorf("read history: %w", err)
	}
	defer func() {
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
			// A connection left in its transaction would read this
			// snapshot for good: the pool drops it.
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	if info, err = channelOn(ctx, conn, app, channel); err != nil || none {
		return info, nil, err
	}
	msgs, err = messagesOn(ctx, conn, app, channel, q)
	return info, msgs, err
}

// channelOn is Channel's read, on rd.
func channelOn(ctx context.Context, rd reader, app, channel string) (domain.ChannelInfo, error) {
	info := domain.ChannelInfo{App: app, Channel: channel}
	err := rd.QueryRowContext(ctx, readHeadQuery, app, channel).Scan(&info.Epoch, &info.Head)
	if errors.Is(err, sql.ErrNoRows) {
		info.First = 1
		return info, nil
	}
	if err != nil {
		return info, fmt.Errorf("read channel: %w", err)
	}
	var first sql.NullInt64
	if err := rd.QueryRowContext(ctx, `SELECT MIN("offset") FROM messages WHERE app = ? AND channel = ?`, app, channel).Scan(&first); err != nil {
		return info, fmt.Errorf("read channel: %w", err)
	}
	info.First = info.Head + 1
	if first.Valid {
		info.First = uint64(first.Int64)
	}
	return info, nil
}

// channelsQuery reads a page of an app's channels: name, epoch, head and
// first retained offset.
const channelsQuery = `SELECT c.name, c.epoch, c.head,
	COALESCE((SELECT MIN("offset") FROM messages m WHERE m.app = c.app AND m.channel = c.name), c.head + 1)
	FROM channel_heads c WHERE c.app = ? AND c.name > ? ORDER BY c.name LIMIT ?`

// Channels implements domain.History. A page reads its rows by the
// channels' key, from after on, whatever the number of channels.
func (l *Log) Channels(ctx context.Context, app, after string, limit int) ([]domain.ChannelInfo, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := l.rdb.QueryContext(ctx, channelsQuery, app, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	defer rows.Close()
	var out []domain.ChannelInfo
	for rows.Next() {
		c := domain.ChannelInfo{App: app}
		if err := rows.Scan(&c.Channel, &c.Epoch, &c.Head, &c.First); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Messages implements domain.History.
func (l *Log) Messages(ctx context.Context, app, channel string, q domain.HistoryQuery) ([]domain.Message, error) {
	conn, err := l.rdb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer conn.Close()
	return messagesOn(ctx, conn, app, channel, q)
}

// messagesOn is Messages' read, on conn.
func messagesOn(ctx context.Context, conn *sql.Conn, app, channel string, q domain.HistoryQuery) ([]domain.Message, error) {
	q, err := offsetBounds(ctx, conn, app, channel, q)
	if err != nil {
		return nil, err
	}
	var where strings.Builder
	args := []any{app, channel, q.After}
	where.WriteString(`app = ? AND channel = ? AND "offset" > ?`)
	if q.Upto > 0 {
		where.WriteString(` AND "offset" <= ?`)
		args = append(args, q.Upto)
	}
	if q.Since > 0 {
		where.WriteString(` AND ts >= ?`)
		args = append(args, q.Since)
	}
	if q.Until > 0 {
		where.WriteString(` AND ts < ?`)
		args = append(args, q.Until)
	}
	limit := q.Limit
	if limit <= 0 || limit > MaxPage {
		limit = MaxPage
	}
	desc := q.Reverse
	if q.Last > 0 {
		desc = true
		limit = min(limit, q.Last)
	}
	order := "ASC"
	if desc {
		order = "DESC"
	}
	args = append(args, limit)
	maxBytes := q.MaxBytes
	switch {
	case maxBytes == 0:
		maxBytes = domain.MaxPageBytes
	case maxBytes < 0:
		maxBytes = math.MaxInt
	}
	out, err := readMessages(ctx, conn, `SELECT "offset", ts, seq, data FROM messages WHERE `+where.String()+` ORDER BY "offset" `+order+` LIMIT ?`, args, min(limit, 1024), maxBytes)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	if q.Last > 0 && !q.Reverse { // newest Last, oldest first
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out, nil
}

// readMessages runs a query for "offset", ts, seq, data on the driver's
// connection itself. A replay reads every message of a channel this way,
// and database/sql's per-row work (a lock, a conversion of each column
// into its destination) cost more than SQLite's: the driver already hands
// over each row's data as a fresh copy, which the message keeps, and its
// integers as int64. It stops once the data read comes to maxBytes or
// more: SQLite steps row by row, so the rows after are never read.
func readMessages(ctx context.Context, conn *sql.Conn, query string, args []any, size, maxBytes int) ([]domain.Message, error) {
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case uint64:
			a = int64(v) // database/sql's conversion, which the driver does not do
		case int:
			a = int64(v)
		}
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	out := make([]domain.Message, 0, size)
	err := conn.Raw(func(dc any) error {
		qc, ok := dc.(driver.QueryerContext)
		if !ok {
			return errors.New("the SQLite driver cannot query directly")
		}
		rows, err := qc.QueryContext(ctx, query, named)
		if err != nil {
			return err
		}
		defer rows.Close()
		dest := make([]driver.Value, 4)
		for {
			if err := rows.Next(dest); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			offset, ok1 := dest[0].(int64)
			ts, ok2 := dest[1].(int64)
			seq, ok3 := dest[2].(int64)
			var data []byte
			switch d := dest[3].(type) {
			case []byte:
				data = d
			case string: // a row written as text by hand
				data = []byte(d)
			}
			if !ok1 || !ok2 || !ok3 || data == nil {
				return fmt.Errorf("message row of unexpected types %T %T %T %T", dest[0], dest[1], dest[2], dest[3])
			}
			out = append(out, domain.Message{Offset: uint64(offset), Time: ts, Seq: uint64(seq), Data: data})
			if maxBytes -= len(data); maxBytes <= 0 {
				return nil
			}
		}
	})
	return out, err
}

// CountMessages counts the retained messages of a channel matching q's
// After, Upto and Since bounds.
func (l *Log) CountMessages(ctx context.Context, app, channel string, q domain.HistoryQuery) (int, error) {
	q, err := offsetBounds(ctx, l.rdb, app, channel, q)
	if err != nil {
		return 0, err
	}
	query := `SELECT COUNT(*) FROM messages WHERE app = ? AND channel = ? AND "offset" > ?`
	args := []any{app, channel, q.After}
	if q.Upto > 0 {
		query += ` AND "offset" <= ?`
		args = append(args, q.Upto)
	}
	if q.Since > 0 {
		query += ` AND ts >= ?`
		args = append(args, q.Since)
	}
	var n int
	err = l.rdb.QueryRowContext(ctx, query, args...).Scan(&n)
	return n, err
}

// TrimmedSince reports whether retention has dropped a message of the
// channel sent at or after since (unix ms), given first, the channel's
// oldest retained offset. The newest dropped message is the broadcast
// just before first; the log keeps its event, with its time, after the
// message itself is gone. If the audit retention has dropped that event
// too, the first retained message bounds it (times never go backwards
// along a channel's offsets): only when that one is at or after since, or
// none is retained, is a gap it cannot rule out reported.
func (l *Log) TrimmedSince(ctx context.Context, app, channel string, first uint64, since int64) (bool, error) {
	if first <= 1 {
		return false, nil
	}
	before, firstTS := int64(math.MaxInt64), int64(math.MaxInt64)
	err := l.rdb.QueryRowContext(ctx, `SELECT seq, ts FROM messages WHERE app = ? AND channel = ? AND "offset" = ?`, app, channel, first).Scan(&before, &firstTS)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("read trimmed messages: %w", err)
	}
	// Retention recorded the broadcasts whose messages it deleted.
	var ts int64
	err = l.rdb.QueryRowContext(ctx, `SELECT e.ts FROM trimmed_broadcasts t JOIN events e ON e.seq = t.seq
		WHERE t.app = ? AND t.channel = ? AND t.seq < ? ORDER BY t.seq DESC LIMIT 1`, app, channel, before).Scan(&ts)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return firstTS >= since, nil
	case err != nil:
		return false, fmt.Errorf("read trimmed messages: %w", err)
	}
	return ts >= since, nil
}

// offsetBounds narrows q's offset range to its time range (Since, Until),
// so that the query reads only the rows in it; the time conditions stay
// in the query too.
func offsetBounds(ctx context.Context, rd reader, app, channel string, q domain.HistoryQuery) (domain.HistoryQuery, error) {
	if q.Since > 0 {
		from, err := offsetFrom(ctx, rd, app, channel, q.Since)
		if err != nil {
			return q, err
		}
		if from > 0 {
			q.After = max(q.After, from-1)
		}
	}
	if q.Until > 0 {
		to, err := offsetFrom(ctx, rd, app, channel, q.Until)
		if err != nil {
			return q, err
		}
		if to > 0 { // no message, nothing to narrow
			if to-1 <= q.After {
				to = q.After + 1 // empty range; Upto 0 would mean no bound
			}
			if q.Upto == 0 || to-1 < q.Upto {
				q.Upto = to - 1
			}
		}
	}
	return q, nil
}

// Events implements domain.History.
func (l *Log) Events(ctx context.Context, q domain.AuditQuery) ([]domain.Event, error) {
	limit := q.Limit
	if limit <= 0 || limit > MaxPage {
		limit = MaxPage
	}
	where, args, err := l.auditWhere(ctx, q, limit)
	if err != nil {
		return nil, err
	}
	recs, err := l.queryRecords(ctx, where, args, limit)
	if err != nil {
		return nil, err
	}
	out := make([]domain.Event, len(recs))
	for i, r := range recs {
		out[i] = r.ev
	}
	return out, nil
}

// auditWhere is the condition on events e that selects q's events, for a
// page of at most limit of them.
func (l *Log) auditWhere(ctx context.Context, q domain.AuditQuery, limit int) (string, []any, error) {
	// Time bounds become sequence bounds first, so that the query reads
	// only the rows in the range (there is no index on time). The lower
	// bounds are merged into one: given two, SQLite searches by one of
	// them and reads on from there.
	after := q.After
	if q.Since > 0 {
		from, err := l.seqFrom(ctx, q.Since)
		if err != nil {
			return "", nil, err
		}
		if from > 0 {
			after = max(after, from-1)
		}
	}
	var to uint64 // the sequence the events are before, given Until
	if q.Until > 0 {
		var err error
		if to, err = l.seqFrom(ctx, q.Until); err != nil {
			return "", nil, err
		}
	}
	// filter is every condition but the channel's, on the events named a.
	filter := func(a string) (string, []any) {
		var conds []string
		var args []any
		add := func(cond string, v ...any) {
			conds = append(conds, cond)
			args = append(args, v...)
		}
		add(a+".seq > ?", after)
		if q.Since > 0 {
			add(a+".ts >= ?", q.Since)
		}
		if q.App != "" {
			add(a+".app = ?", q.App)
		}
		if len(q.Types) > 0 {
			ph := strings.TrimSuffix(strings.Repeat("?,", len(q.Types)), ",")
			v := make([]any, len(q.Types))
			for i, t := range q.Types {
				v[i] = t
			}
			add(a+".name IN ("+ph+")", v...)
		}
		// The indexes by channel and by client leave out the events
		// without one, and SQLite uses such a partial index only when the
		// query says in so many words that the column is not empty: a
		// bound value could be. Without the literal, a client's trail is
		// read by going through every event of the app.
		if q.Client != "" {
			add(a+".client = ? AND "+a+".client <> ''", q.Client)
		}
		if q.Until > 0 {
			add(a+".seq < ?", to)
			add(a+".ts < ?", q.Until)
		}
		return strings.Join(conds, " AND "), args
	}
	if q.Channel == "" {
		where, args := filter("e")
		return where, args, nil
	}
	if q.App == "" {
		// No index leads to a channel of every app: the events are read
		// in order and the channel's kept.
		where, args := filter("e")
		return where + " AND e.channel = ?", append(args, q.Channel), nil
	}
	return l.channelWhere(ctx, q, after, to, limit, filter)
}

// channelWhere is auditWhere's condition for an app's channel. The index
// by channel holds the channel's events other than broadcasts (migration
// 0005); its broadcasts are those of its retained messages and of its
// trimmed_broadcasts. Each of the three gives its first limit events that
// pass filter, in sequence order (a channel's offsets and sequences rise
// together), and the page is the first limit of them all.
func (l *Log) channelWhere(ctx context.Context, q domain.AuditQuery, after, to uint64, limit int, filter func(string) (string, []any)) (string, []any, error) {
	others, broadcasts := len(q.Types) == 0, len(q.Types) == 0
	for _, t := range q.Types {
		if t == domain.NameMessageBroadcast {
			broadcasts = true
		} else {
			others = true
		}
	}
	var arms []string
	var args []any
	arm := func(query string, a ...any) {
		arms = append(arms, "SELECT seq FROM ("+query+")")
		args = append(args, a...)
	}
	x, xargs := filter("x")
	if others {
		arm(`SELECT x.seq FROM events x INDEXED BY events_app_channel
			WHERE x.app = ? AND x.channel = ? AND x.channel <> '' AND x."offset" IS NULL AND `+x+` ORDER BY x.seq LIMIT ?`,
			slices.Concat([]any{q.App, q.Channel}, xargs, []any{limit})...)
	}
	if broadcasts {
		seqs := "t.seq > ?"
		sargs := []any{after}
		if q.Until > 0 {
			seqs += " AND t.seq < ?"
			sargs = append(sargs, to)
		}
		arm(`SELECT t.seq FROM trimmed_broadcasts t JOIN events x ON x.seq = t.seq
			WHERE t.app = ? AND t.channel = ? AND `+seqs+` AND `+x+` ORDER BY t.seq LIMIT ?`,
			slices.Concat([]any{q.App, q.Channel}, sargs, xargs, []any{limit})...)
		// The retained messages' range of offsets: from the first sent
		// after after, to the first sent at or after to. The bounds are
		// read before the page, and a message committed in between has a
		// later offset than any they saw: it is in the range.
		lo, _, err := l.offsetAfterSeq(ctx, q.App, q.Channel, after)
		if err != nil {
			return "", nil, err
		}
		offs := `m."offset" >= ?`
		oargs := []any{lo}
		if q.Until > 0 {
			// Only a narrowing: the filter holds the sequences under to.
			hi, found, err := l.offsetAfterSeq(ctx, q.App, q.Channel, max(to, 1)-1)
			if err != nil {
				return "", nil, err
			}
			if found {
				offs += ` AND m."offset" < ?`
				oargs = append(oargs, hi)
			}
		}
		arm(`SELECT m.seq FROM messages m JOIN events x ON x.seq = m.seq
			WHERE m.app = ? AND m.channel = ? AND `+offs+` AND `+x+` ORDER BY m."offset" LIMIT ?`,
			slices.Concat([]any{q.App, q.Channel}, oargs, xargs, []any{limit})...)
	}
	// Every type is a broadcast or not, so there is at least one part.
	return "e.seq IN (" + strings.Join(arms, " UNION ALL ") + ")", args, nil
}

func (l *Log) readRecords(ctx context.Context, after uint64, limit int, names []string) ([]*record, error) {
	cond := "e.seq > ?"
	args := []any{after}
	if len(names) > 0 {
		cond += " AND e.name IN (" + strings.TrimSuffix(strings.Repeat("?,", len(names)), ",") + ")"
		for _, n := range names {
			args = append(args, n)
		}
	}
	return l.queryRecords(ctx, cond, args, limit)
}

// recordsQuery reads the events that match where, and the data of the
// broadcasts among them, in sequence order; its last argument is the limit.
func recordsQuery(where string) string {
	return `SELECT e.seq, e.uuid, e.name, e.ts, e.payload, m.data
		FROM events e LEFT JOIN messages m ON e."offset" IS NOT NULL AND m.app = e.app AND m.channel = e.channel AND m."offset" = e."offset"
		WHERE ` + where + ` ORDER BY e.seq LIMIT ?`
}

func (l *Log) queryRecords(ctx context.Context, where string, args []any, limit int) ([]*record, error) {
	args = append(args, limit)
	rows, err := l.rdb.QueryContext(ctx, recordsQuery(where), args...)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var out []*record
	for rows.Next() {
		var (
			r       record
			seq     int64 // not uint64: database/sql would convert by way of a string
			name    string
			payload []byte
			data    []byte
		)
		if err := rows.Scan(&seq, &r.uuid, &name, &r.ev.Time, &payload, &data); err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		r.ev.Seq = uint64(seq)
		f, err := decodeFact(name, payload)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", r.ev.Seq, err)
		}
		r.ev.Fact = f
		r.payload = payload
		if mb, ok := f.(*domain.MessageBroadcast); ok && data != nil {
			mb.Data = data
			r.payload = withData(payload, data)
		}
		out = append(out, &r)
	}
	return out, rows.Err()
}

// subscribersAtQuery finds a channel's subscribes by the index by channel,
// and what each client did after its subscribe by the index by client (the
// literal tests for a non-empty value, and for no offset, let SQLite use
// those partial indexes; see auditWhere).
const subscribersAtQuery = `SELECT DISTINCT e.client FROM events e
	WHERE e.app = ? AND e.channel = ? AND e.channel <> '' AND e."offset" IS NULL AND e.name = ? AND e.ts <= ?
	AND NOT EXISTS (SELECT 1 FROM events x
		WHERE x.app = e.app AND x.client = e.client AND x.client <> '' AND x.seq > e.seq AND x.ts <= ?
		AND ((x.name = ? AND x.channel = e.channel) OR x.name = ?))
	ORDER BY e.client`

// SubscribersAt returns who was subscribed to a channel at time at (unix
// ms, inclusive), computed from the log: every client whose latest
// subscribe to the channel at or before at was not followed, by then, by an
// unsubscribe from it or by the end of its session.
func (l *Log) SubscribersAt(ctx context.Context, app, channel string, at int64) ([]string, error) {
	out, err := l.queryStrings(ctx, subscribersAtQuery,
		app, channel, domain.NameChannelSubscribed, at, at, domain.NameChannelUnsubscribed, domain.NameClientDisconnected)
	if err != nil {
		return nil, fmt.Errorf("read subscribers at %d: %w", at, err)
	}
	if out == nil {
		out = []string{} // none, as JSON says it: []
	}
	return out, nil
}
