package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// run executes the command line args; main only turns its error into an
// exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := &cobra.Command{
		Use:           "fazt",
		Short:         "Fazt realtime: WebSocket channels with durable, replayable history in one SQLite file",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(serveCmd())
	root.AddCommand(historyCmd(), auditCmd(), backupCmd(), restoreCmd(), tailCmd(), publishCmd(), purgeCmd(), membersCmd(), rebuildCmd(), statsCmd())
	root.AddCommand(benchCmd())
	return root.ExecuteContext(ctx)
}

// exitCode is an error that ends the process with its own status rather
// than 1: `fazt rebuild` exits 1 when it finds differences and 2 when it
// could not check, as diff(1) does, so that a script can tell the two.
type exitCode struct {
	code int
	err  error
}

func (e exitCode) Error() string { return e.err.Error() }
func (e exitCode) Unwrap() error { return e.err }
func (e exitCode) ExitCode() int { return e.code }

// envOr returns the environment variable key, or def when it is unset.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// envDuration returns the environment variable key as a duration, or def
// when it is unset. A value that is not a duration is left to
// checkEnvDuration to report.
func envDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return d
	}
	return def
}

// envBool returns the environment variable key as a boolean, or def when
// it is unset. A value that is not one is left to checkEnvBool to report.
func envBool(key string, def bool) bool {
	if b, err := strconv.ParseBool(os.Getenv(key)); err == nil {
		return b
	}
	return def
}

// checkEnvBool reports an environment variable set to something that is
// not a boolean, which envBool could not use.
func checkEnvBool(key string) error {
	if v := os.Getenv(key); v != "" {
		if _, err := strconv.ParseBool(v); err != nil {
			return fmt.Errorf("%s=%q: want true or false", key, v)
		}
	}
	return nil
}

// checkEnvDuration reports an environment variable set to something that
// is not a duration ("2" instead of "2ms"), which envDuration could not use.
func checkEnvDuration(key string) error {
	if v := os.Getenv(key); v != "" {
		if _, err := time.ParseDuration(v); err != nil {
			return fmt.Errorf("%s=%q: want a duration such as 2ms", key, v)
		}
	}
	return nil
}
