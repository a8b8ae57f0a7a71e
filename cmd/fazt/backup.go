package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
it is complete: a failed or interrupted (Ctrl-C) backup removes its partial
file; a backup killed outright leaves it, hidden, as .FILE.partial-*. The
copy is readable by its owner only.

Every channel in the copy gets a new epoch: once the copy is served again,
its offsets after each channel's head will name other messages than the
ones clients of this server saw at them, and a client that resumes with its
old epoch is replayed the channel's history from its start
(docs/operators.md, "Backups"). --keep-epochs keeps them, to move a stopped
server's file where nothing was lost.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := dbExists(db); err != nil {
				return err
			}
			start := time.Now()
			info, err := events.Backup(cmd.Context(), db, args[0], events.CopyOptions{KeepEpochs: keep})
			if err != nil {
				return err
			}
			took := time.Since(start)
			w := cmd.OutOrStdout()
			if asJSON {
				abs, err := filepath.Abs(db)
				if err != nil {
					abs = db
				}
				return json.NewEncoder(w).Encode(map[string]any{
					"database": abs, "file": args[0], "bytes": info.Bytes, "events": info.Events,
					"last_seq": info.LastSeq, "channels": info.Channels, "new_epochs": !keep,
					"schema": info.Schema, "seconds": took.Seconds(),
				})
			}
			fmt.Fprintf(w, "backed up %s to %s (%s, %s): %d events up to seq %d, %s %s\n",
				db, args[0], bytesText(info.Bytes), took.Round(time.Millisecond), info.Events, info.LastSeq, channelsText(info.Channels), epochsText(keep))
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
		db           string
		keep, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "restore BACKUP",
		Short: "Put a copy of a backup in the database's place, for fazt serve to start on",
		Long: `Put a copy of BACKUP, a file fazt backup wrote (or a stopped server's
database, its write-ahead log included), in the place of the database, for
fazt serve to start on. Stop the server first: a database open for writing
is refused (on Linux, where its lock says so). BACKUP is not written (but
a file in WAL mode, such as a server's, gets SQLite's -wal and -shm beside
it, and needs its folder writable for them); the copy is made as fazt
backup makes one (a fazt database of this fazt's schema
or an older one, which fazt serve then brings up to date), checked (SQLite's
quick_check), given the mode and owner of the file it replaces, and synced.

Every channel in the copy gets a new epoch, as fazt backup gives them: each
restore starts a history of its own (docs/operators.md, "Backups");
--keep-epochs keeps them, to move a stopped server's file.

The database replaced is first made one file, as a clean stop of its
server leaves it (what its -wal holds is copied in), then kept under a
new name, <db>.replaced-<UTC time>: whole, and nothing of it is left
beside the restored file, where SQLite would apply it (a damaged one,
not a database or corrupt to SQLite, has its -wal, -shm and -journal
renamed to go with it). A database another process has open is refused
until it is closed: in WAL mode any connection that has read it, even
idle; in rollback mode only one in a transaction can be seen. Where the
file system has hard links, the database's own name always names a
whole file: the copy takes it in one rename. The database must not be a
symbolic link.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Lstat(db); errors.Is(err, fs.ErrNotExist) && !cmd.Flags().Changed("db") && os.Getenv("FAZT_DB") == "" {
				return fmt.Errorf("no database at %s: give --db (or FAZT_DB) to restore to a new file", db)
			}
			abs, err := filepath.Abs(db)
			if err != nil {
				return err
			}
			info, err := events.Restore(cmd.Context(), args[0], db, events.CopyOptions{KeepEpochs: keep})
			w := cmd.OutOrStdout()
			if info.Aside != "" {
				if a, aerr := filepath.Abs(info.Aside); aerr == nil {
					info.Aside = a
				}
			}
			if err != nil {
				if info.Aside != "" { // in place, but not synced: say where the old one is
					fmt.Fprintf(cmd.ErrOrStderr(), "the database it replaced is %s\n", info.Aside)
				}
				return err
			}
			if asJSON {
				return json.NewEncoder(w).Encode(map[string]any{
					"database": abs, "backup": args[0], "bytes": info.Bytes, "events": info.Events,
					"last_seq": info.LastSeq, "channels": info.Channels, "new_epochs": !keep,
					"schema": info.Schema, "replaced": info.Aside,
				})
			}
			fmt.Fprintf(w, "restored %s from %s (%s): %d events up to seq %d, %s %s\n",
				abs, args[0], bytesText(info.Bytes), info.Events, info.LastSeq, channelsText(info.Channels), epochsText(keep))
			if info.Aside != "" {
				fmt.Fprintf(w, "the database it replaced is %s\n", info.Aside)
			}
			return nil
		},
	}
	f := cmd.Flags()
	dbFlag(f, &db)
	f.BoolVar(&keep, "keep-epochs", false, "keep the channels' epochs: to move a stopped server's file, where nothing was lost")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

// channelsText counts channels in words.
func channelsText(n int64) string {
	if n == 1 {
		return "1 channel"
	}
	return fmt.Sprintf("%d channels", n)
}

// epochsText says what a copy did with the channels' epochs.
func epochsText(keep bool) string {
	if keep {
		return "with their epochs kept"
	}
	return "with new epochs"
}
