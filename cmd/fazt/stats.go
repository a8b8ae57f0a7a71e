package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func statsCmd() *cobra.Command {
	var (
		db, app string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "stats [--app A]",
		Short: "Print what the database holds: events, channels, messages, size, oldest retained",
		Long: `Print how many events, channels and retained messages the database holds,
its size on disk, and the oldest retained item of each kind (what retention
has kept). Works while fazt serve is running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if app != "" {
				if err := checkApp(app); err != nil {
					return err
				}
			}
			l, err := openReadOnly(cmd.Context(), db)
			if err != nil {
				return err
			}
			defer l.Close()
			s, err := l.Stats(cmd.Context(), app)
			if err != nil {
				return dbError(db, err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				kinds := []map[string]any{}
				for _, k := range s.Kinds {
					kinds = append(kinds, map[string]any{"type": k.Name, "count": k.Count, "oldest_seq": k.OldestSeq, "oldest_time": k.OldestTime})
				}
				return json.NewEncoder(w).Encode(map[string]any{
					"app": app, "events": s.Events, "first_seq": s.FirstSeq, "last_seq": s.LastSeq,
					"channels": s.Channels, "messages": s.Messages, "oldest_message_time": s.OldestMessage,
					"file_bytes": s.FileBytes, "wal_bytes": s.WALBytes, "kinds": kinds,
				})
			}
			scope := "all apps"
			if app != "" {
				scope = "app " + app
			}
			fmt.Fprintf(w, "database  %s (%s, write-ahead log %s)\n", db, bytesText(s.FileBytes), bytesText(s.WALBytes))
			fmt.Fprintf(w, "scope     %s\n", scope)
			fmt.Fprintf(w, "events    %d (seq %d to %d)\n", s.Events, s.FirstSeq, s.LastSeq)
			fmt.Fprintf(w, "channels  %d\n", s.Channels)
			oldest := "-"
			if s.Messages > 0 {
				oldest = formatTime(s.OldestMessage)
			}
			fmt.Fprintf(w, "messages  %d retained, oldest %s\n\n", s.Messages, oldest)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TYPE\tCOUNT\tOLDEST SEQ\tOLDEST TIME")
			for _, k := range s.Kinds {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", shortType(k.Name), k.Count, k.OldestSeq, formatTime(k.OldestTime))
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	dbFlag(f, &db)
	f.StringVar(&app, "app", "", "only this app (default: every app)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
