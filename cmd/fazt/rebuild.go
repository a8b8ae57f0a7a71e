package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/projections"
	"github.com/fazt-realtime/fazt/transport/ws"
)

func rebuildCmd() *cobra.Command {
	var (
		db, progress string
		maxShown     int
	)
	cmd := &cobra.Command{
		Use:   "rebuild",
		Short: "Replay the whole log into fresh projections and check the stored ones, and each channel's head",
		Long: `Replay the event log from sequence 0 into fresh read models and compare
them with the stored subscriptions projection (tables sessions and
subscriptions, at its checkpoint) and with the live membership as a server
restores it from the log. Works while fazt serve is running: the comparison
is made at the stored projection's checkpoint, read in one snapshot (the
log itself is read in pages outside it: a purge or an audit retention pass
that deletes events meanwhile may make the two disagree; run it again
before taking a difference for damage).
Then check each channel's head against the offsets its broadcasts were
given (a head taken back would give offsets again) and its retained
messages for gaps, in one snapshot too.

Prints a summary and every difference; exits 1 when there is any, and 2
when it could not check (no database, a bad flag or argument, a read
that failed).
None are expected: a difference means a stored row was damaged or a
projection disagrees with the log.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.NoArgs(cmd, args); err != nil {
				return exitCode{2, err}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if maxShown < 0 {
				return exitCode{2, fmt.Errorf("--max-diffs %d: want 0 or more", maxShown)}
			}
			var showBar func(total uint64) bool
			switch progress {
			case "auto":
				tty := isTerminal(cmd.ErrOrStderr())
				showBar = func(total uint64) bool { return tty && total >= 100000 }
			case "always":
				showBar = func(uint64) bool { return true }
			case "never":
				showBar = func(uint64) bool { return false }
			default:
				return exitCode{2, fmt.Errorf("--progress %q: want auto, always or never", progress)}
			}
			l, err := openReadOnly(cmd.Context(), db)
			if err != nil {
				return exitCode{2, err}
			}
			defer l.Close()
			rep, err := rebuild(cmd.Context(), l, cmd.ErrOrStderr(), showBar)
			if err != nil {
				return exitCode{2, dbError(db, err)}
			}
			rep.print(cmd.OutOrStdout(), maxShown)
			if n := len(rep.diffs); n > 0 {
				return fmt.Errorf("rebuild found %d difference(s) between the stored projections or the channels and the log", n)
			}
			return nil
		},
	}
	// A flag that is not understood is a check not made, as diff(1) has
	// it: status 2, not the 1 of differences found.
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitCode{2, err} })
	f := cmd.Flags()
	dbFlag(f, &db)
	f.StringVar(&progress, "progress", "auto", "progress bar on stderr: auto (on long logs, when stderr is a terminal), always or never")
	f.IntVar(&maxShown, "max-diffs", 100, "print at most this many differences")
	return cmd
}

// rebuildReport is what a rebuild found.
type rebuildReport struct {
	checkpoint, head      uint64
	behind                int // membership events past the checkpoint (up to maxBehindCounted+1)
	sessions, subs        int
	elapsed               time.Duration
	diffs                 []string
	membershipComparedAt  uint64
	storedSessions, stSub int
	channels              int
	channelsTook          time.Duration
}

func (r *rebuildReport) print(w io.Writer, maxShown int) {
	fmt.Fprintf(w, "replayed the log up to seq %d (log head %d) in %s\n", r.checkpoint, r.head, r.elapsed.Round(time.Millisecond))
	if r.behind > 0 {
		// A running server's stored projection trails by a flush or so;
		// a stopped one's has applied every membership event. Far
		// behind, it is stuck: what it has yet to apply is not compared.
		n := strconv.Itoa(r.behind)
		if r.behind > maxBehindCounted {
			n = "more than " + strconv.Itoa(maxBehindCounted)
		}
		fmt.Fprintf(w, "note: the stored projection %s has %s membership events of the log yet to apply, which were not compared: a server stopped cleanly leaves none, a running server's trails by a flush (50 ms) or so, and one much further behind is stuck or was cut off by a crash\n", projections.SubscriptionsName, n)
	}
	fmt.Fprintf(w, "%s: %d open sessions, %d subscriptions (stored: %d, %d)\n", projections.SubscriptionsName, r.sessions, r.subs, r.storedSessions, r.stSub)
	fmt.Fprintf(w, "%s: compared with the replay at seq %d\n", projections.MembershipName, r.membershipComparedAt)
	fmt.Fprintf(w, "channels: %d, each head checked against its broadcasts' offsets and its retained offsets for gaps, in %s\n", r.channels, r.channelsTook.Round(time.Millisecond))
	if len(r.diffs) == 0 {
		fmt.Fprintln(w, "differences: none")
		return
	}
	fmt.Fprintf(w, "differences: %d\n", len(r.diffs))
	for i, d := range r.diffs {
		if i == maxShown {
			fmt.Fprintf(w, "  ... and %d more\n", len(r.diffs)-maxShown)
			break
		}
		fmt.Fprintf(w, "  %s\n", d)
	}
}

// maxBehindCounted bounds the membership events past the checkpoint that
// rebuild counts for its note: one read's page, less the one that says
// there are more.
const maxBehindCounted = events.MaxPage - 1

// rebuild replays the log into a fresh subscriptions model and a fresh
// membership, both up to the stored projection's checkpoint, and diffs
// them with the stored rows.
func rebuild(ctx context.Context, l *events.Log, stderr io.Writer, showBar func(total uint64) bool) (*rebuildReport, error) {
	start := time.Now()
	stored, err := projections.LoadSubscriptionState(ctx, l)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil, errors.New("this database has no stored projections yet: run fazt serve on it once to migrate it")
		}
		return nil, err
	}
	st, err := l.Stats(ctx, "")
	if err != nil {
		return nil, err
	}
	rep := &rebuildReport{checkpoint: stored.Applied, head: st.LastSeq, storedSessions: len(stored.Sessions), stSub: len(stored.Subscriptions)}
	// Only membership events move the checkpoint: broadcasts after it
	// are not behind. Counted up to a bound: the note says "more than".
	behind, err := l.Events(ctx, domain.AuditQuery{Types: projections.MembershipEvents, After: stored.Applied, Limit: maxBehindCounted + 1})
	if err != nil {
		return nil, err
	}
	rep.behind = len(behind)
	upto := stored.Applied

	var bar *progressBar
	if showBar(upto) {
		bar = newProgressBar(stderr, "replaying", upto)
	}
	replayed, err := projections.Replay(ctx, l, upto, func(seq uint64) {
		if bar != nil {
			bar.set(seq)
		}
	})
	if bar != nil {
		bar.done()
	}
	if err != nil {
		return nil, err
	}
	rep.sessions, rep.subs = len(replayed.Sessions), len(replayed.Subscriptions)
	rep.diffs = append(rep.diffs, diffSubscriptions("stored", stored, replayed)...)

	// The live membership, computed from the same events: the two read
	// models must agree. (A start closes the sessions of the stored rows,
	// so the comparison above is also of what a restart would close.)
	m := projections.NewMembership(ws.Encoder{}, func(context.Context, string, string) (uint64, string, error) { return 0, "", nil }, 0)
	if err := m.Restore(ctx, l, upto); err != nil {
		return nil, err
	}
	rep.membershipComparedAt = upto
	rep.diffs = append(rep.diffs, diffSubscriptions(projections.MembershipName, membershipState(m), replayed)...)

	rep.elapsed = time.Since(start)

	// The channels' offsets: heads against the broadcasts, and the runs
	// of retained messages.
	checked := time.Now()
	problems, channels, err := l.CheckChannels(ctx)
	if err != nil {
		return nil, err
	}
	rep.channels, rep.channelsTook = channels, time.Since(checked)
	rep.diffs = append(rep.diffs, problems...)
	return rep, nil
}

// membershipState reads a membership into the subscriptions model's shape;
// sequence numbers and times are not compared, since membership keeps none.
func membershipState(m *projections.Membership) *projections.SubscriptionState {
	s := projections.NewSubscriptionState()
	for app, clients := range m.Sessions() {
		for _, c := range clients {
			s.Sessions[[2]string{app, c}] = projections.SessionRow{App: app, Client: c}
			for _, ch := range m.Subscriptions(app, c) {
				s.Subscriptions[[3]string{app, ch, c}] = projections.SubscriptionRow{App: app, Channel: ch, Client: c}
			}
		}
	}
	return s
}

// diffSubscriptions lists how got differs from want, the replay of the
// log. Rows of a model without sequence numbers (seq 0) are compared by key.
func diffSubscriptions(name string, got, want *projections.SubscriptionState) []string {
	var out []string
	for k, g := range got.Sessions {
		w, ok := want.Sessions[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: session %s/%s (seq %d) is not open in the log", name, g.App, g.Client, g.Seq))
		case g.Seq != 0 && (g.Seq != w.Seq || g.Time != w.Time):
			out = append(out, fmt.Sprintf("%s: session %s/%s opened at seq %d ts %d; the log says seq %d ts %d", name, g.App, g.Client, g.Seq, g.Time, w.Seq, w.Time))
		}
	}
	for k, w := range want.Sessions {
		if _, ok := got.Sessions[k]; !ok {
			out = append(out, fmt.Sprintf("%s: session %s/%s (opened at seq %d) is missing", name, w.App, w.Client, w.Seq))
		}
	}
	for k, g := range got.Subscriptions {
		w, ok := want.Subscriptions[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: subscription of %s to %s/%s (seq %d) is not open in the log", name, g.Client, g.App, g.Channel, g.Seq))
		case g.Seq != 0 && (g.Seq != w.Seq || g.Time != w.Time):
			out = append(out, fmt.Sprintf("%s: subscription of %s to %s/%s opened at seq %d ts %d; the log says seq %d ts %d", name, g.Client, g.App, g.Channel, g.Seq, g.Time, w.Seq, w.Time))
		}
	}
	for k, w := range want.Subscriptions {
		if _, ok := got.Subscriptions[k]; !ok {
			out = append(out, fmt.Sprintf("%s: subscription of %s to %s/%s (opened at seq %d) is missing", name, w.Client, w.App, w.Channel, w.Seq))
		}
	}
	sort.Strings(out)
	return out
}

// progressBar draws a one-line bar on a terminal's stderr, redrawn at most
// every 100ms so that drawing never slows the work.
type progressBar struct {
	w     io.Writer
	label string
	total uint64
	last  time.Time
	start time.Time
}

func newProgressBar(w io.Writer, label string, total uint64) *progressBar {
	b := &progressBar{w: w, label: label, total: max(total, 1), start: time.Now()}
	b.draw(0)
	return b
}

func (b *progressBar) set(n uint64) {
	if time.Since(b.last) < 100*time.Millisecond {
		return
	}
	b.draw(n)
}

func (b *progressBar) draw(n uint64) {
	const width = 30
	n = min(n, b.total)
	full := int(n * width / b.total)
	fmt.Fprintf(b.w, "\r%s [%s%s] %3d%% %d/%d events", b.label, strings.Repeat("#", full), strings.Repeat(".", width-full),
		n*100/b.total, n, b.total)
	b.last = time.Now()
}

func (b *progressBar) done() {
	b.draw(b.total)
	fmt.Fprintf(b.w, " in %s\n", time.Since(b.start).Round(time.Millisecond))
}
