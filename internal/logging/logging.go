// Package logging builds the process's slog logger from the settings.
package logging

import (
	"io"
	"log/slog"
)

// New returns a logger writing format ("text" or "json") at level
// ("debug", "info", "warn", "error") to w.
func New(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
