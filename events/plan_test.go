package events

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/testutil"
)

// queryPlan returns SQLite's plan for query on l's readers.
func queryPlan(ctx context.Context, l *Log, query string, args ...any) (plan []string, err error) {
	err = l.ReadTx(ctx, func(tx *sql.Tx) error {
		plan, err = testutil.QueryPlan(ctx, tx, query, args...)
		return err
	})
	return plan, err
}

// TestAuditQueriesUseTheirIndexes checks how SQLite plans the reads that
// filter by channel or client: each must search the index on that column,
// not go through every event of the app, which a log of millions of
// events makes seconds per page. The data does not change the plans (no
// statistics are gathered), so an empty log shows them.
func TestAuditQueriesUseTheirIndexes(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	ctx := context.Background()
	audit := func(q domain.AuditQuery) (string, []any) {
		where, args, err := l.auditWhere(ctx, q, 100)
		if err != nil {
			t.Fatal(err)
		}
		return recordsQuery(where), append(args, 100)
	}
	sessionArgs := []any{"app", "c1", 100, 100}
	for _, n := range sessionEvents {
		sessionArgs = append(sessionArgs, n)
	}
	sessionArgs = append(sessionArgs, 500)
	// A retained message, without which the channel's trail has no part
	// that reads messages.
	if _, err := l.Append(ctx, broadcast("app", "room", `{}`)); err != nil {
		t.Fatal(err)
	}
	byChannel, byChannelArgs := audit(domain.AuditQuery{App: "app", Channel: "room"})
	byClient, byClientArgs := audit(domain.AuditQuery{App: "app", Client: "c1"})
	for _, tc := range []struct {
		name  string
		query string
		args  []any
		want  []string // each must be a step of the plan
	}{
		{"audit by channel", byChannel, byChannelArgs, []string{
			"SEARCH x USING INDEX events_app_channel (app=? AND channel=? AND seq>?)",
			"SEARCH t USING PRIMARY KEY (app=? AND channel=? AND seq>?)",
			"SEARCH m USING PRIMARY KEY (app=? AND channel=? AND offset>?)",
			"SEARCH e USING INTEGER PRIMARY KEY (rowid=?)",
		}},
		{"audit by client", byClient, byClientArgs, []string{"SEARCH e USING INDEX events_app_client (app=? AND client=? AND seq>?)"}},
		{"subscribers at", subscribersAtQuery,
			[]any{"app", "room", domain.NameChannelSubscribed, 1, 1, domain.NameChannelUnsubscribed, domain.NameClientDisconnected},
			[]string{"SEARCH e USING INDEX events_app_channel (app=? AND channel=?)", "SEARCH x USING INDEX events_app_client (app=? AND client=? AND seq>?)"}},
		{"audit retention: disconnections", trimEndsQuery, []any{"app", domain.NameClientDisconnected, 0, 100, 500},
			[]string{"SEARCH events USING INDEX events_app_name (app=? AND name=? AND seq>? AND seq<?)"}},
		{"audit retention: a session's events", trimSessionQuery, sessionArgs,
			[]string{"SEARCH events USING INDEX events_app_client (app=? AND client=? AND seq<?)"}},
		{"audit retention: broadcasts to all", trimAllQuery, []any{"app", domain.NameBroadcastAll, 100, 500},
			[]string{"SEARCH events USING COVERING INDEX events_app_name (app=? AND name=? AND seq<?)"}},
		{"audit retention: a channel's broadcasts", trimChannelQuery, []any{"app", "room", 100, 500},
			[]string{"SEARCH trimmed_broadcasts USING PRIMARY KEY (app=? AND channel=? AND seq<?)"}},
		{"audit retention: the next channel with such broadcasts", trimNextChannelQuery, []any{"app", "room"},
			[]string{"SEARCH trimmed_broadcasts USING PRIMARY KEY (app=? AND channel>?)"}},
		{"audit retention: kicks", trimKicksQuery, []any{"app", domain.NameClientKicked, 0, 100, 500},
			[]string{"SEARCH events USING INDEX events_app_name (app=? AND name=? AND seq>? AND seq<?)"}},
		{"audit retention: a kicked client's start", trimStartedQuery, []any{"app", "c1", domain.NameClientConnected, 100},
			[]string{"SEARCH events USING INDEX events_app_client (app=? AND client=? AND seq<?)"}},
	} {
		wantSteps(t, l, tc.name, tc.query, tc.args, tc.want)
	}
}

// wantSteps checks that each of want is a step of SQLite's plan for query.
func wantSteps(t *testing.T, l *Log, name, query string, args []any, want []string) {
	t.Helper()
	plan, err := queryPlan(context.Background(), l, query, args...)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, w := range want {
		if !slices.Contains(plan, w) {
			t.Errorf("%s: plan has no step %q:\n\t%s", name, w, strings.Join(plan, "\n\t"))
		}
	}
}

// TestChannelHeadsSeekTheNewestMessage: a head is read from the channel's
// row and its newest message (channel_heads), each by its primary key, in
// every read of heads: the writer's of one and of all, a channel's, the
// list's and retention's. (SQLite reads a MAX over the rest of a key's
// columns in one seek, which the plan does not show.)
func TestChannelHeadsSeekTheNewestMessage(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	newest := "SEARCH newest USING PRIMARY KEY (app=? AND channel=?)"
	for _, tc := range []struct {
		name  string
		query string
		args  []any
		row   string // how the channels' rows are read
	}{
		{"a channel's head", readHeadQuery, []any{"app", "room"}, "SEARCH c USING PRIMARY KEY (app=? AND name=?)"},
		{"every head", loadHeadsQuery, nil, "SCAN c"},
		{"the list", channelsQuery, []any{"app", "", 10}, "SEARCH c USING PRIMARY KEY (app=? AND name>?)"},
		{"retention's list", channelsDueQuery, []any{"app"}, "SEARCH c USING PRIMARY KEY (app=?)"},
	} {
		wantSteps(t, l, tc.name, tc.query, tc.args, []string{tc.row, newest})
	}
}
