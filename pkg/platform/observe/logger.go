package observe

import (
	"errors"
	"io"
	"os"
	"strings"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// NewLogger returns a go-kit logger writing to w in format "json" or "logfmt" (anything else
// means logfmt), with a UTC timestamp and the caller. levelName filters: "debug", "info",
// "warn", "error".
func NewLogger(w io.Writer, format, levelName string) log.Logger {
	var l log.Logger
	if strings.EqualFold(format, "json") {
		l = log.NewJSONLogger(log.NewSyncWriter(w))
	} else {
		l = log.NewLogfmtLogger(log.NewSyncWriter(w))
	}
	l = log.With(l, "ts", log.DefaultTimestampUTC)
	filtered := level.ErrNotAllowed(ErrFiltered)
	switch strings.ToLower(levelName) {
	case "debug":
		l = level.NewFilter(l, level.AllowDebug(), filtered)
	case "warn":
		l = level.NewFilter(l, level.AllowWarn(), filtered)
	case "error":
		l = level.NewFilter(l, level.AllowError(), filtered)
	default:
		l = level.NewFilter(l, level.AllowInfo(), filtered)
	}
	return l
}

// ErrFiltered is what a logger from NewLogger returns for a line its level drops, so that
// code logging the same kind of line on every request (LoggingMiddleware) can tell and stop
// building it. Nothing else needs to look at it: a dropped line is not a failure.
var ErrFiltered = errors.New("observe: the log level drops this line")

// DefaultLogFormat is JSON unless standard error is a terminal, as DESIGN.md asks.
func DefaultLogFormat() string {
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return "logfmt"
	}
	return "json"
}
