package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fazt-realtime/fazt/domain"
)

func membersCmd() *cobra.Command {
	var (
		db, app, channel, at string
		asJSON               bool
	)
	cmd := &cobra.Command{
		Use:   "members --app A --channel C [--at T]",
		Short: "Print who was subscribed to a channel at a time, from the event log",
		Long: `Print the client ids subscribed to a channel at time T (default: now),
computed from the event log: every client whose latest subscribe at or
before T was not followed, by T, by an unsubscribe or by the end of its
session (a disconnect, including one caused by a kick or recorded as
server_restart when the server came back after a crash). T is an age (90s,
2h, 7d) or a time (2026-01-02T15:04, RFC 3339, unix ms).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := domain.ValidateChannel(channel); err != nil {
				return fmt.Errorf("--channel: %w", err)
			}
			if err := checkApp(app); err != nil {
				return err
			}
			now := time.Now()
			t, err := parseTime(at, now)
			if err != nil {
				return fmt.Errorf("--at: %w", err)
			}
			if at == "" {
				t = now.UnixMilli()
			}
			l, err := openReadOnly(cmd.Context(), db)
			if err != nil {
				return err
			}
			defer l.Close()
			ids, err := l.SubscribersAt(cmd.Context(), app, channel, t)
			if err != nil {
				return dbError(db, err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(map[string]any{"app": app, "channel": channel, "at": t, "subscribers": ids})
			}
			for _, id := range ids {
				if _, err := fmt.Fprintln(w, id); err != nil {
					return err // a list cut short is not a success
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d subscribed to %s/%s at %s\n", len(ids), app, channel, formatTime(t))
			return nil
		},
	}
	f := cmd.Flags()
	dbFlag(f, &db)
	f.StringVar(&app, "app", domain.DefaultApp, "app")
	f.StringVar(&channel, "channel", "", "channel (required)")
	f.StringVar(&at, "at", "", "the time to ask about (default: now)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object: app, channel, at, subscribers")
	cmd.MarkFlagRequired("channel")
	return cmd
}
