package main

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// watermillLogger is Watermill's slog adapter with Watermill's info lines
// at debug, that drops a line before converting its fields when the server
// log would drop it anyway: the router writes a trace line with fields for
// every message it handles.
type watermillLogger struct {
	watermill.LoggerAdapter
	log *slog.Logger
}

// watermillInfo is the level Watermill's info lines are logged at.
const watermillInfo = slog.LevelDebug

func newWatermillLogger(log *slog.Logger) watermillLogger {
	log = log.With("component", "watermill")
	return watermillLogger{watermill.NewSlogLoggerWithLevelMapping(log, map[slog.Level]slog.Level{slog.LevelInfo: watermillInfo}), log}
}

func (w watermillLogger) on(level slog.Level) bool { return w.log.Enabled(context.Background(), level) }

func (w watermillLogger) Info(msg string, fields watermill.LogFields) {
	if w.on(watermillInfo) {
		w.LoggerAdapter.Info(msg, fields)
	}
}

func (w watermillLogger) Debug(msg string, fields watermill.LogFields) {
	if w.on(slog.LevelDebug) {
		w.LoggerAdapter.Debug(msg, fields)
	}
}

func (w watermillLogger) Trace(msg string, fields watermill.LogFields) {
	if w.on(watermill.LevelTrace) {
		w.LoggerAdapter.Trace(msg, fields)
	}
}

func (w watermillLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return watermillLogger{w.LoggerAdapter.With(fields), w.log}
}
