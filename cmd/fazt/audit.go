package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/transport/httpapi"
)

func auditCmd() *cobra.Command {
	var (
		db, app, types, channel, client, since, until string
		after, limit                                  int64
		asJSON, asCSV                                 bool
	)
	cmd := &cobra.Command{
		Use:   "audit [--app A] [--type subscribed,kicked,...] [--channel C] [--client ID] [--since T] [--until T] [--after SEQ]",
		Short: "Print the event log: who connected, subscribed, published and was kicked",
		Long: `Print the event log from the database, oldest first, as a table (time,
sequence, type, app, channel, client, summary), JSON lines (--json) or CSV
(--csv). Works while fazt serve is running.

--type takes short names (connected, disconnected, subscribed, unsubscribed,
broadcast, broadcast_all, kicked) or full event names, comma-separated.
--since and --until (exclusive) take an age (90s, 2h, 7d) or a time
(2026-01-02T15:04, RFC 3339, unix ms). --after SEQ starts after that
sequence number; when --limit cuts the output short, the sequence to pass
as --after for the next page is printed on stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON && asCSV {
				return errors.New("choose one of --json and --csv")
			}
			if after < 0 || limit < 0 {
				return errors.New("--after and --limit must be 0 or more")
			}
			if app != "" {
				if err := checkApp(app); err != nil {
					return err
				}
			}
			q := domain.AuditQuery{App: app, Channel: channel, Client: client, After: uint64(after)}
			var err error
			if q.Types, err = httpapi.ParseTypes(types); err != nil {
				return fmt.Errorf("--type: %w", err)
			}
			now := time.Now()
			if q.Since, err = parseTime(since, now); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if q.Until, err = parseTime(until, now); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			l, err := openReadOnly(cmd.Context(), db)
			if err != nil {
				return err
			}
			defer l.Close()
			out := newAuditWriter(cmd.OutOrStdout(), asJSON, asCSV)
			printed := 0
			// Every page starts after the last sequence printed; sequences
			// only grow and a short page is the last, so this ends.
			for {
				page := 1000
				if limit > 0 {
					page = min(page, int(limit)-printed)
				}
				q.Limit = page
				evs, err := l.Events(cmd.Context(), q)
				if err != nil {
					return dbError(db, err)
				}
				for _, ev := range evs {
					if err := out.write(httpapi.NewAuditEvent(ev)); err != nil {
						return err
					}
				}
				printed += len(evs)
				if len(evs) < page {
					break
				}
				q.After = evs[len(evs)-1].Seq
				if limit > 0 && printed >= int(limit) {
					if err := out.flush(); err != nil {
						return err
					}
					q.Limit = 1 // is there one more?
					more, err := l.Events(cmd.Context(), q)
					if err != nil {
						return dbError(db, err)
					}
					if len(more) > 0 {
						fmt.Fprintf(cmd.ErrOrStderr(), "more events follow: next page with --after %d\n", q.After)
					}
					return nil
				}
			}
			return out.flush()
		},
	}
	f := cmd.Flags()
	dbFlag(f, &db)
	f.StringVar(&app, "app", "", "only this app (default: every app)")
	f.StringVar(&types, "type", "", "only these event types, comma-separated")
	f.StringVar(&channel, "channel", "", "only events of this channel")
	f.StringVar(&client, "client", "", "only events of this client id")
	f.StringVar(&since, "since", "", "only events at or after this time")
	f.StringVar(&until, "until", "", "only events before this time")
	f.Int64Var(&after, "after", 0, "only events after this sequence number")
	f.Int64Var(&limit, "limit", 0, "print at most this many events (0: all)")
	f.BoolVar(&asJSON, "json", false, "print JSON lines: seq, time, type, app, channel, client, event")
	f.BoolVar(&asCSV, "csv", false, "print CSV with a header row")
	return cmd
}

// auditWriter prints audit events in one of the three formats.
type auditWriter struct {
	w   io.Writer
	tw  *tabwriter.Writer
	cw  *csv.Writer
	enc *json.Encoder
	n   int
}

func newAuditWriter(w io.Writer, asJSON, asCSV bool) *auditWriter {
	a := &auditWriter{w: w}
	switch {
	case asJSON:
		a.enc = json.NewEncoder(w)
	case asCSV:
		a.cw = csv.NewWriter(w)
		a.cw.Write([]string{"seq", "time", "type", "app", "channel", "client", "summary", "event"})
	default:
		a.tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(a.tw, "TIME\tSEQ\tTYPE\tAPP\tCHANNEL\tCLIENT\tSUMMARY")
	}
	return a
}

func (a *auditWriter) write(e httpapi.AuditEvent) error {
	switch {
	case a.enc != nil:
		return a.enc.Encode(e)
	case a.cw != nil:
		body, err := json.Marshal(e.Event)
		if err != nil {
			return err
		}
		return a.cw.Write([]string{strconv.FormatUint(e.Seq, 10), time.UnixMilli(e.Time).UTC().Format(time.RFC3339Nano),
			e.Type, e.App, e.Channel, e.Client, summary(e.Event), string(body)})
	default:
		_, err := fmt.Fprintf(a.tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", formatTime(e.Time), e.Seq, shortType(e.Type),
			e.App, dash(e.Channel), dash(e.Client), summary(e.Event))
		// The table is flushed now and then so that a long audit streams.
		if a.n++; a.n%256 == 0 {
			a.tw.Flush()
		}
		return err
	}
}

func (a *auditWriter) flush() error {
	switch {
	case a.cw != nil:
		a.cw.Flush()
		return a.cw.Error()
	case a.tw != nil:
		return a.tw.Flush()
	}
	return nil
}

// shortType returns the short audit name of an event name.
func shortType(name string) string {
	for short, full := range httpapi.EventTypes {
		if full == name {
			return short
		}
	}
	return name
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// summary says in a few words what an event's fields add to its type and
// scope.
func summary(f domain.Fact) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+printable(v)) // a kick's reason is anyone's text
		}
	}
	actor := func(a domain.Actor) string {
		if a.ID == "" {
			return a.Kind
		}
		return a.Kind + ":" + a.ID
	}
	switch f := f.(type) {
	case *domain.ClientConnected:
		add("remote", f.Remote)
		add("origin", f.Origin)
		add("agent", oneLine(f.UserAgent, 40))
	case *domain.ClientDisconnected:
		add("reason", f.Reason)
	case *domain.ChannelSubscribed:
		start := string(f.Start.Mode)
		if f.Start.Mode != domain.StartLive && f.Start.Mode != "" {
			start += ":" + strconv.FormatInt(f.Start.Value, 10)
		}
		add("start", start)
	case *domain.ChannelUnsubscribed:
		add("reason", f.Reason)
	case *domain.MessageBroadcast:
		add("offset", strconv.FormatUint(f.Offset, 10))
		add("by", actor(f.Publisher))
		add("data", oneLine(string(f.Data), 60))
	case *domain.BroadcastAll:
		add("by", actor(f.Publisher))
		add("data", oneLine(string(f.Data), 60))
	case *domain.ClientKicked:
		add("reason", f.Reason)
		add("by", actor(f.By))
	}
	return strings.Join(parts, " ")
}
