package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/fazt-realtime/fazt/events"
)

func backupCmd() *cobra.Command {
	var (
		db           string
		keep, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent copy of the database to a new file, while fazt serve runs",
		Long: `Write a consistent copy of the database to FILE, a file that must not exist,
while fazt serve goes on writing the database: the copy holds the log up to
one event, whole, compacted into one file with no write-ahead log beside it
(SQLite's VACUUM INTO, read in one transaction on a read-only connection).
It is checked (SQLite's quick_check), synced, and given its name only once
it is complete: a failed or interrupted backup leaves no file. The copy is
readable by its owner only.

Every channel in the copy gets a new epoch: once the copy is served again,
its offsets after each channel's head will name other messages than the
ones clients of this server saw at them, and a client that resumes with its
old epoch is replayed the channel's history from its start
(docs/operators.md, "Backups"). --keep-epochs keeps them, to move a stopped
server's file where nothing was lost.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("database %s does not exist (set --db or FAZT_DB)", db)
			}
			start := time.Now()
			info, err := events.Backup(cmd.Context(), db, args[0], events.BackupOptions{KeepEpochs: keep})
			if err != nil {
				return dbError(db, err)
			}
			took := time.Since(start)
			w := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(map[string]any{
					"database": db, "file": args[0], "bytes": info.Bytes, "events": info.Events,
					"last_seq": info.LastSeq, "channels": info.Channels, "new_epochs": !keep,
					"schema": info.Schema, "seconds": took.Seconds(),
				})
			}
			channels := fmt.Sprintf("%d channels", info.Channels)
			if info.Channels == 1 {
				channels = "1 channel"
			}
			epochs := "with new epochs"
			if keep {
				epochs = "with their epochs kept"
			}
			fmt.Fprintf(w, "backed up %s to %s (%s, %s): %d events up to seq %d, %s %s\n",
				db, args[0], bytesText(info.Bytes), took.Round(time.Millisecond), info.Events, info.LastSeq, channels, epochs)
			return nil
		},
	}
	f := cmd.Flags()
	dbFlag(f, &db)
	f.BoolVar(&keep, "keep-epochs", false, "keep the channels' epochs: for a copy of a stopped server's file, to serve in its place")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func restoreCmd() *cobra.Command {
	var (
		db     string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "restore BACKUP",
		Short: "Put a backup in the database's place, for fazt serve to start on",
		Long: `Put a copy of BACKUP, a file fazt backup wrote (or a stopped server's
database), in the place of the database, for fazt serve to start on. Stop
the server first: a database open for writing is refused (on Linux, where
its lock says so). BACKUP is checked first (a fazt database, of this fazt's
schema or an older one, whole by SQLite's quick_check) and left as it is.
The database it replaces is renamed aside with its -wal and -shm, to
<db>.replaced-<UTC time>: whole, with whatever its write-ahead log held,
and no log of it is left beside the restored file, where SQLite would take
it for the new file's. The copy is synced before it takes the name.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := events.Restore(cmd.Context(), args[0], db)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(map[string]any{
					"database": db, "backup": args[0], "events": info.Events, "last_seq": info.LastSeq,
					"schema": info.Schema, "replaced": info.Aside,
				})
			}
			fmt.Fprintf(w, "restored %s from %s: %d events up to seq %d\n", db, args[0], info.Events, info.LastSeq)
			if info.Aside != "" {
				fmt.Fprintf(w, "the database it replaced is %s\n", info.Aside)
			}
			return nil
		},
	}
	f := cmd.Flags()
	dbFlag(f, &db)
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
