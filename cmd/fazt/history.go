package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/migrations"
)

func historyCmd() *cobra.Command {
	var (
		db, app, channel, since string
		offset, last, limit     int64
		asJSON                  bool
	)
	cmd := &cobra.Command{
		Use:   "history --app A --channel C [--offset N | --last K | --since T]",
		Short: "Print a channel's retained messages from the database",
		Long: `Print a channel's retained messages, oldest first, read straight from the
database (this works while fazt serve is running). --offset N starts after
offset N, as a subscribe does; --last K prints the newest K; --since T the
messages at or after T (an age such as 90s, 2h, 7d, or a time such as
2026-01-02T15:04, RFC 3339, or unix ms).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := 0
			for _, name := range []string{"offset", "last", "since"} {
				if cmd.Flags().Changed(name) {
					n++
				}
			}
			if n > 1 {
				return errors.New("history takes at most one of --offset, --last and --since")
			}
			if err := domain.ValidateChannel(channel); err != nil {
				return fmt.Errorf("--channel: %w", err)
			}
			if err := checkApp(app); err != nil {
				return err
			}
			if offset < 0 || last < 0 || limit < 0 {
				return errors.New("--offset, --last and --limit must be 0 or more")
			}
			q := domain.HistoryQuery{After: uint64(offset), Last: int(last)}
			var err error
			if q.Since, err = parseTime(since, time.Now()); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			l, err := openReadOnly(cmd.Context(), db)
			if err != nil {
				return err
			}
			defer l.Close()
			if last == 0 && cmd.Flags().Changed("last") {
				return nil // the newest none, of a database that is there
			}
			if err := noteGap(cmd.Context(), cmd.ErrOrStderr(), l, app, channel, q, cmd.Flags().Changed("offset"), since != ""); err != nil {
				return dbError(db, err)
			}
			if err := printHistory(cmd.Context(), cmd.OutOrStdout(), l, app, channel, q, int(limit), asJSON); err != nil {
				return dbError(db, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	dbFlag(f, &db)
	f.StringVar(&app, "app", domain.DefaultApp, "app")
	f.StringVar(&channel, "channel", "", "channel (required)")
	f.Int64Var(&offset, "offset", 0, "print messages after this offset")
	f.Int64Var(&last, "last", 0, "print the newest K messages")
	f.StringVar(&since, "since", "", "print messages at or after this time")
	f.Int64Var(&limit, "limit", 0, "print at most this many messages (0: all)")
	f.BoolVar(&asJSON, "json", false, "print JSON lines: offset, timestamp, seq, data")
	cmd.MarkFlagRequired("channel")
	return cmd
}

// noteGap says on w when messages asked for from an offset (byOffset) or
// a time (bySince) are no longer retained, as a subscribe says with
// truncated: true: retention (or a purge) dropped them, and what is
// printed starts after the gap.
func noteGap(ctx context.Context, w io.Writer, l *events.Log, app, channel string, q domain.HistoryQuery, byOffset, bySince bool) error {
	if !byOffset && !bySince {
		return nil
	}
	info, err := l.Channel(ctx, app, channel)
	if err != nil {
		return err
	}
	// Read apart from the head, the oldest offset may be past it by the
	// time it is read (all trimmed meanwhile): at most head+1.
	first := min(info.First, info.Head+1)
	if first <= 1 {
		return nil
	}
	rest := fmt.Sprintf("printing from %d", first)
	if first > info.Head {
		rest = "none is retained"
	}
	if byOffset {
		if from := q.After + 1; from == first-1 {
			fmt.Fprintf(w, "fazt history: offset %d of %s is no longer retained (dropped by retention or a purge); %s\n", from, channel, rest)
		} else if from < first {
			fmt.Fprintf(w, "fazt history: offsets %d to %d of %s are no longer retained (dropped by retention or a purge); %s\n", from, first-1, channel, rest)
		}
		return nil
	}
	trimmed, err := l.TrimmedSince(ctx, app, channel, first, q.Since)
	if err == nil && trimmed {
		fmt.Fprintf(w, "fazt history: messages of %s at or after --since were dropped (by retention or a purge), up to offset %d; %s\n", channel, first-1, rest)
	}
	return err
}

// printHistory pages through a channel's messages matching q and prints
// them; limit 0 prints all.
func printHistory(ctx context.Context, w io.Writer, l *events.Log, app, channel string, q domain.HistoryQuery, limit int, asJSON bool) (err error) {
	var tw *tabwriter.Writer
	if !asJSON {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "OFFSET\tTIME\tSEQ\tDATA")
		defer func() {
			if ferr := tw.Flush(); err == nil {
				err = ferr // a failed write (a full disk) is not a success
			}
		}()
	}
	if q.Last > 0 && limit > 0 {
		q.Last = min(q.Last, limit)
	}
	if q.Last > events.MaxPage {
		// More than one read holds: page through the newest K from the
		// offset before them up to the head as of now. A channel's
		// retained history has no gaps, so they are the offsets after
		// head - K.
		info, err := l.Channel(ctx, app, channel)
		if err != nil {
			return err
		}
		if info.Head == 0 {
			return nil
		}
		q.After = info.Head - min(info.Head, uint64(q.Last))
		q.Upto, q.Last, limit = info.Head, 0, 0
	}
	if q.Last > 0 {
		// The newest K are one read, of at most events.MaxPage
		// messages, whatever their size: the command's own memory.
		q.Limit, q.MaxBytes = q.Last, -1
		msgs, err := l.Messages(ctx, app, channel, q)
		if err != nil {
			return err
		}
		return writeMessages(w, tw, msgs, asJSON)
	}
	printed := 0
	// Each page starts after the last offset printed, so the loop ends:
	// offsets only grow, and a page neither full nor cut at
	// domain.MaxPageBytes is the last.
	for {
		page := events.MaxPage / 10
		if limit > 0 {
			page = min(page, limit-printed)
		}
		q.Limit = page
		msgs, err := l.Messages(ctx, app, channel, q)
		if err != nil {
			return err
		}
		if err := writeMessages(w, tw, msgs, asJSON); err != nil {
			return err
		}
		printed += len(msgs)
		if !domain.HistoryPageFull(msgs, page) || (limit > 0 && printed >= limit) {
			return nil
		}
		q.After = msgs[len(msgs)-1].Offset
	}
}

func writeMessages(w io.Writer, tw *tabwriter.Writer, msgs []domain.Message, asJSON bool) error {
	for _, m := range msgs {
		if asJSON {
			b, err := json.Marshal(m)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", m.Offset, formatTime(m.Time), m.Seq, oneLine(string(m.Data), 200))
	}
	if tw != nil {
		// Page by page, so that a long history streams rather than wait
		// in memory for its last row (as audit's table does).
		return tw.Flush()
	}
	return nil
}

// oneLine squeezes text onto one line of at most max runes, for tables.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max-1]) + "…"
	}
	return printable(s)
}

// printable returns s with what a terminal would act on rather than show
// written as Go escapes: control characters (an ESC that starts a
// terminal sequence, a carriage return or newline that would make up a
// row of a table, a tab that shifts its columns), the marks that reorder
// text (bidirectional controls) and bytes that are not UTF-8. Text a
// client or an app chose (a kick's reason, a user agent) is shown this
// way, so that it cannot pass for rows or act on the operator's terminal.
func printable(s string) string {
	var b strings.Builder
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		bad := r == utf8.RuneError && size == 1
		if !bad && shown(r) {
			i += size
			continue
		}
		b.WriteString(s[done:i])
		if bad {
			fmt.Fprintf(&b, "\\x%02x", s[i])
		} else {
			q := strconv.QuoteRune(r) // '\x1b', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
		done = i
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// shown says whether a terminal shows r as itself.
func shown(r rune) bool {
	return !unicode.IsControl(r) && !unicode.Is(unicode.Bidi_Control, r)
}

// checkApp refuses an --app that no app can have, which would read as an
// app with nothing in it.
func checkApp(app string) error {
	if err := domain.ValidateApp(app); err != nil {
		return fmt.Errorf("--app: %w", err)
	}
	return nil
}

// dbFlag adds the --db flag of commands that read the database.
func dbFlag(f interface {
	StringVar(p *string, name, value, usage string)
}, p *string) {
	f.StringVar(p, "db", envOr("FAZT_DB", "fazt.db"), "SQLite database file (FAZT_DB)")
}

// secretFlag adds a flag that takes a secret, env's value unless given.
// The value is set after the flag is made, so that its default as help
// and usage print it is empty: a secret in the environment never shows on
// a terminal or in a log.
func secretFlag(f interface {
	StringVar(p *string, name, value, usage string)
}, p *string, name, env, usage string) {
	f.StringVar(p, name, "", usage)
	*p = os.Getenv(env)
}

// keyFlag adds a flag that takes an API key (FAZT_ADMIN_KEY).
func keyFlag(f interface {
	StringVar(p *string, name, value, usage string)
}, p *string, name, usage string) {
	secretFlag(f, p, name, "FAZT_ADMIN_KEY", usage)
}

// dbExists refuses a database file that is not there, naming the flag
// and variable that give it.
func dbExists(path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("database %s does not exist (set --db or FAZT_DB)", path)
	}
	return nil
}

// openReadOnly opens the database for reading beside a running server and
// turns the usual failures into one clear line.
func openReadOnly(ctx context.Context, path string) (*events.Log, error) {
	if err := dbExists(path); err != nil {
		return nil, err
	}
	l, err := events.Open(ctx, events.Config{Path: path, ReadOnly: true})
	if err != nil {
		return nil, dbError(path, err)
	}
	return l, nil
}

// dbError rewords SQLite's errors about a file it cannot use.
func dbError(path string, err error) error {
	if se := (*migrations.SchemaError)(nil); errors.As(err, &se) {
		return fmt.Errorf("database %s: %v", path, se)
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY"):
		return fmt.Errorf("database %s is locked by another process; try again when it is released", path)
	case strings.Contains(msg, "file is not a database"):
		return fmt.Errorf("%s is not a fazt database", path)
	case strings.Contains(msg, "no event log in it"):
		return fmt.Errorf("%s is not a fazt database (no event log in it)", path)
	}
	return fmt.Errorf("database %s: %s", path, strings.Join(strings.Fields(msg), " "))
}
