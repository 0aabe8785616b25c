package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regclient/regclient/types"
)

// maxLogRecords bounds the records buffered between two calls. Records past
// it are counted and reported as one dropped-records line.
const maxLogRecords = 256

// logRecord is one log line handed to Python's logging module.
type logRecord struct {
	Level   int    `json:"level"`
	Message string `json:"message"`
}

// Python logging levels.
const (
	pyDebug   = 10
	pyInfo    = 20
	pyWarning = 30
	pyError   = 40
)

type opContextKey struct{}

// logSink collects regclient's log records for one client. Records made
// under an operation's context go to that operation; the rest wait in the
// client's buffer and ride along with the next result.
type logSink struct {
	// minLevel is the lowest Python level the caller's logger wants.
	minLevel atomic.Int64

	mu      sync.Mutex
	records []logRecord
	dropped int
}

func (s *logSink) add(rec logRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.records) >= maxLogRecords {
		s.dropped++
		return
	}
	s.records = append(s.records, rec)
}

// drain returns and clears the buffered records.
func (s *logSink) drain() []logRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.records
	if s.dropped > 0 {
		out = append(out, logRecord{Level: pyWarning, Message: fmt.Sprintf("%d regclient log records dropped", s.dropped)})
	}
	s.records, s.dropped = nil, 0
	return out
}

// sinkHandler is the slog.Handler given to regclient.
type sinkHandler struct {
	sink  *logSink
	attrs []slog.Attr
}

func (h *sinkHandler) Enabled(ctx context.Context, level slog.Level) bool {
	// Request traces are always wanted under an operation: they carry the
	// Retry-After header of a 429 answer.
	if level == types.LevelTrace && ctx.Value(opContextKey{}) != nil {
		return true
	}
	return int64(pythonLevel(level)) >= h.sink.minLevel.Load()
}

func (h *sinkHandler) Handle(ctx context.Context, rec slog.Record) error {
	op, _ := ctx.Value(opContextKey{}).(*operation)
	if rec.Level == types.LevelTrace {
		return h.handleRequest(op, rec)
	}

	var b strings.Builder
	b.WriteString(rec.Message)
	write := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%s", a.Key, redactValue(a))
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	rec.Attrs(write)
	h.deliver(op, logRecord{Level: pythonLevel(rec.Level), Message: b.String()})
	return nil
}

// handleRequest turns regclient's per-request trace into one debug line
// without headers, and records Retry-After on the operation.
func (h *sinkHandler) handleRequest(op *operation, rec slog.Record) error {
	var method, url, status string
	var respHeaders http.Header
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "req-method":
			method = a.Value.String()
		case "req-url":
			url = a.Value.String()
		case "resp-status":
			status = a.Value.String()
		case "resp-headers":
			respHeaders, _ = a.Value.Any().(http.Header)
		}
		return true
	})
	if op != nil && strings.HasPrefix(status, "429") {
		op.setRetryAfter(respHeaders.Get("Retry-After"))
	}
	if op != nil && respHeaders != nil {
		op.recordContentLength(url, respHeaders.Get("Content-Length"))
	}
	if h.sink.minLevel.Load() <= pyDebug {
		h.deliver(op, logRecord{Level: pyDebug, Message: fmt.Sprintf("%s %s: %s", method, url, status)})
	}
	return nil
}

func (h *sinkHandler) deliver(op *operation, rec logRecord) {
	if op != nil {
		op.logs.add(rec)
		return
	}
	h.sink.add(rec)
}

func (h *sinkHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &sinkHandler{sink: h.sink, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...)}
}

// WithGroup flattens groups: the records are text lines, not trees.
func (h *sinkHandler) WithGroup(string) slog.Handler { return h }

func pythonLevel(level slog.Level) int {
	switch {
	case level >= slog.LevelError:
		return pyError
	case level >= slog.LevelWarn:
		return pyWarning
	case level >= slog.LevelInfo:
		return pyInfo
	default:
		return pyDebug
	}
}

// secretKeyParts are attribute key fragments whose values are never logged.
var secretKeyParts = []string{"auth", "token", "pass", "secret", "cred", "cookie", "header"}

func redactValue(a slog.Attr) string {
	key := strings.ToLower(a.Key)
	for _, part := range secretKeyParts {
		if strings.Contains(key, part) {
			return "[redacted]"
		}
	}
	return a.Value.String()
}

// parseRetryAfter reads a Retry-After value given in seconds or as an HTTP
// date, returning seconds from now.
func parseRetryAfter(value string, now time.Time) (float64, bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, false
	}
	var seconds int64
	if _, err := fmt.Sscanf(value, "%d", &seconds); err == nil && fmt.Sprint(seconds) == value && seconds >= 0 {
		return float64(seconds), true
	}
	when, err := http.ParseTime(value)
	if err != nil {
		return 0, false
	}
	return max(when.Sub(now).Seconds(), 0), true
}
