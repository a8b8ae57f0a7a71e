package main

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// purgeTimeout bounds fazt purge's wait: an app of millions of messages
// or sessions takes minutes.
var purgeTimeout = 10 * time.Minute

func purgeCmd() *cobra.Command {
	var (
		server, app, key string
		audit, asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "purge --app A [--audit]",
		Short: "Delete the history of an app the server no longer hosts",
		Long: `Delete, through a running server (POST /_api/apps/{app}/purge), the
retained messages of an app whose folder has been removed: retention keeps
such an app's history whole until told otherwise. With --audit, the
events of its ended sessions, its broadcasts to all and its trimmed
broadcasts go too. Only the admin key may. An app still hosted (default
always is), or one while the apps folder has changed within the server's
--app-grace (10s; removing an app's folder changes it), is refused: try
again once it has not. The channels'
heads stay, so an app made again under the name never reuses an offset.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkApp(app); err != nil {
				return err
			}
			if key == "" {
				return errors.New("no key: set --admin-key or FAZT_ADMIN_KEY")
			}
			body := []byte(`{}`)
			if audit {
				body = []byte(`{"audit":true}`)
			}
			var resp struct {
				Messages     int   `json:"messages"`
				Events       int   `json:"events"`
				MessagesLeft int   `json:"messages_left"`
				EventsLeft   int   `json:"events_left"`
				NewestKept   bool  `json:"newest_kept"`
				Known        *bool `json:"known"` // absent from servers before 7 December 2026: known
			}
			// Asked of the default app's host: the purged app has none.
			raw, err := callAPIWithin(cmd.Context(), purgeTimeout, server, "", key, "POST", "/_api/apps/"+app+"/purge", body, &resp)
			var late *noAnswer
			if errors.As(err, &late) {
				return fmt.Errorf("no answer from %s within %s: the purge goes on at the server, whose log says what it deleted when it ends (a purge of the app is refused until then)", late.host, late.within)
			}
			if err != nil {
				return err
			}
			if asJSON {
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\n", bytes.TrimSpace(raw))
				return err
			}
			w := cmd.OutOrStdout()
			if resp.Known != nil && !*resp.Known {
				// A purge of nothing is not one of an app that had
				// nothing: a typo is told as one.
				_, err := fmt.Fprintf(w, "the log holds nothing of app %s: no channel and no event (a name mistyped, never hosted here, or an app that never broadcast, purged before)\n", app)
				return err
			}
			if _, err := fmt.Fprintf(w, "purged app %s: %d messages, %d events; left %d messages, %d events\n", app, resp.Messages, resp.Events, resp.MessagesLeft, resp.EventsLeft); err != nil {
				return err
			}
			switch {
			case resp.MessagesLeft > 0 || (resp.EventsLeft > 0 && audit):
				_, err = fmt.Fprintln(w, "what is left was still to be read or applied, or is of sessions still open: run it again in a minute")
			case resp.EventsLeft > 0:
				_, err = fmt.Fprintln(w, "its events are kept: --audit drops them")
			case resp.NewestKept && audit:
				_, err = fmt.Fprintln(w, "the log's newest event is the app's: it stays (a sequence number is never given twice)")
			}
			return err
		},
	}
	serverFlags(cmd, &server)
	f := cmd.Flags()
	keyFlag(f, &key, "admin-key", "the admin key (FAZT_ADMIN_KEY)")
	f.StringVar(&app, "app", "", "the app whose history to delete (required)")
	f.BoolVar(&audit, "audit", false, "delete its events too: its ended sessions', its broadcasts to all, and those of its broadcasts whose messages are gone")
	f.BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	cmd.MarkFlagRequired("app")
	return cmd
}
