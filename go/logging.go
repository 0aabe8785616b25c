package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
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
	sink   *logSink
	client *Client
	attrs  []slog.Attr
}

func (h *sinkHandler) Enabled(ctx context.Context, level slog.Level) bool {
	// Request records are always wanted, whatever Python's level: a trace
	// under an operation carries the Retry-After of a 429, and a failed
	// request (logged at debug level) the reason a connection failed.
	if level == types.LevelTrace {
		return ctx.Value(opContextKey{}) != nil
	}
	return level >= slog.LevelDebug
}

func (h *sinkHandler) Handle(ctx context.Context, rec slog.Record) error {
	op, _ := ctx.Value(opContextKey{}).(*operation)
	// regclient logs a failed request at debug level without its context,
	// and a completed one at trace level with it.
	if rec.Message == "reg http request" {
		return h.handleRequest(op, rec)
	}

	var b strings.Builder
	b.WriteString(rec.Message)
	write := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%s", a.Key, redactValue(a))
		return true
	}
	if int64(pythonLevel(rec.Level)) < h.sink.minLevel.Load() {
		return nil
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
	var method, url, status, transportErr string
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
		case "err":
			transportErr = a.Value.String()
		}
		return true
	})
	if op != nil && strings.HasPrefix(status, "401") && op.client != nil {
		noteRealm(op.client.policy, respHeaders.Get("Www-Authenticate"))
	}
	if op != nil && strings.HasPrefix(status, "429") {
		op.setRetryAfter(respHeaders.Get("Retry-After"))
	}
	if op != nil && respHeaders != nil {
		op.recordContentLength(url, respHeaders.Get("Content-Length"))
	}
	if transportErr != "" && h.client != nil {
		h.client.recordTransportError(url, transportErr)
	}
	if h.sink.minLevel.Load() <= pyDebug {
		outcome := status
		if transportErr != "" {
			outcome = transportErr
		}
		h.deliver(op, logRecord{Level: pyDebug, Message: fmt.Sprintf("%s %s: %s", method, url, outcome)})
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
	return &sinkHandler{sink: h.sink, client: h.client, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...)}
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
	if seconds, err := strconv.ParseUint(value, 10, 64); err == nil {
		return min(float64(seconds), maxRetryAfter), true
	}
	when, err := http.ParseTime(value)
	if err != nil {
		return 0, false
	}
	return min(max(when.Sub(now).Seconds(), 0), maxRetryAfter), true
}

// maxRetryAfter caps a Retry-After at about 31 years, far past any timeout
// and well inside time.Duration's range.
const maxRetryAfter = 1e9
