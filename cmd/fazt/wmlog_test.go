package main

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/fazt-realtime/fazt/internal/testutil"
)

func TestWatermillLoggerLevels(t *testing.T) {
	for _, tc := range []struct {
		level slog.Level
		want  []string // lines that get through, in order
	}{
		{slog.LevelWarn, []string{"an error"}},
		{slog.LevelDebug, []string{"an info", "a debug", "an error"}},
		{watermill.LevelTrace, []string{"an info", "a debug", "a trace", "an error"}},
	} {
		var buf testutil.SyncBuffer
		l := newWatermillLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level}))).
			With(watermill.LogFields{"handler": "h"})
		l.Info("an info", watermill.LogFields{"k": 1})
		l.Debug("a debug", nil)
		l.Trace("a trace", watermill.LogFields{"k": 2})
		l.Error("an error", errors.New("boom"), nil)
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if !strings.Contains(line, "component=watermill") || !strings.Contains(line, "handler=h") {
				t.Fatalf("line without its attributes: %s", line)
			}
			got = append(got, line[strings.Index(line, "msg=")+5:strings.Index(line, "\" ")])
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("level %v: got %q, want %q", tc.level, got, tc.want)
		}
		if tc.level == slog.LevelDebug && !strings.Contains(buf.String(), "level=DEBUG msg=\"an info\"") {
			t.Errorf("watermill's info lines should log at debug: %s", buf.String())
		}
	}
}
