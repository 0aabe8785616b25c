package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// request is the JSON document that rcx_op_start receives.
type request struct {
	// Kind is "config" to fetch an image config, or "parse" to only parse
	// the reference.
	Kind      string `json:"kind"`
	Image     string `json:"image"`
	Platform  string `json:"platform"`
	TimeoutMs int64  `json:"timeout_ms"`
	// LogLevel is the lowest Python logging level the caller wants.
	LogLevel int64 `json:"log_level"`
}

// envelope is the JSON document rcx_op_result returns: a result or an
// error, with the log records made since the last call.
type envelope struct {
	Result any          `json:"result,omitempty"`
	Error  *errorRecord `json:"error,omitempty"`
	Logs   []logRecord  `json:"logs"`
}

// operation is one request running on its own goroutine. result, body, err
// and info are written once, before done is closed.
type operation struct {
	done     chan struct{}
	cancelFn context.CancelFunc
	// stop cancels the operation with a cause, when the registry requests
	// a wait longer than the time left.
	stop     context.CancelCauseFunc
	deadline time.Time
	client   *Client
	started  time.Time
	req      request
	ctx      context.Context
	logs     logSink

	result any
	body   []byte
	err    error
	info   *errorContext

	mu          sync.Mutex
	retryAfter  *float64
	rateLimited bool
	// contentLengths holds the last Content-Length seen per URL, so a
	// failed read can tell an oversized body from a truncated one.
	contentLengths map[string]int64
}

// newOperation prepares a request; launch starts it once it has a handle.
func (c *Client) newOperation(raw []byte) *operation {
	var req request
	if err := json.Unmarshal(raw, &req); err != nil {
		return failedOperation(invalidArgument(fmt.Errorf("invalid request: %w", err)))
	}
	c.logs.minLevel.Store(req.LogLevel)

	op := &operation{done: make(chan struct{}), client: c, req: req, started: time.Now()}
	ctx, stop := context.WithCancelCause(context.WithValue(c.ctx, opContextKey{}, op))
	op.stop = stop
	if req.TimeoutMs > 0 {
		op.deadline = time.Now().Add(time.Duration(req.TimeoutMs) * time.Millisecond)
		ctx, op.cancelFn = context.WithDeadline(ctx, op.deadline)
	} else {
		ctx, op.cancelFn = context.WithCancel(ctx)
	}
	op.ctx = ctx
	return op
}

// launch runs the operation on its own goroutine, unless it has already
// failed.
func (op *operation) launch() {
	liveOperations.Add(1)
	if op.ctx != nil {
		go op.run(op.ctx, op.req)
	}
}

func (op *operation) run(ctx context.Context, req request) {
	callStarted()
	defer callFinished()
	defer close(op.done)
	defer op.stop(nil)
	defer op.cancelFn()
	defer func() {
		if p := recover(); p != nil {
			op.err = panicError(p)
		}
	}()

	op.info = &errorContext{}
	switch req.Kind {
	case "parse":
		op.result, op.err = parseReference(req.Image)
	case "classify_address":
		addr, err := netip.ParseAddr(req.Image)
		if err != nil {
			op.err = invalidArgument(err)
			return
		}
		op.result = map[string]bool{"internal": isInternalAddress(addr)}
	case "config":
		result, err := op.fetchWithRetry(ctx, req)
		if err != nil {
			op.err = op.contextError(ctx, err)
			return
		}
		op.result, op.body = result.info, result.config
	default:
		op.err = invalidArgument(fmt.Errorf("unknown request kind %q", req.Kind))
	}
}

// unavailableRetries is how many times a 503 response is retried. regclient
// retries 429, 500, 502 and 504 itself but gives up on a 503, which
// registries send during deploys and overloads.
const unavailableRetries = 2

// fetchWithRetry fetches an image config, retrying a 503 after a short,
// growing delay while the call has time left.
func (op *operation) fetchWithRetry(ctx context.Context, req request) (*configResult, error) {
	for attempt := 0; ; attempt++ {
		result, err := fetchImageConfig(ctx, op.client, req, op.info)
		if err == nil || attempt == unavailableRetries || !strings.Contains(err.Error(), "[http 503]") {
			return result, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		}
	}
}

// failedOperation returns an operation that has already finished with err.
func failedOperation(err error) *operation {
	op := &operation{done: make(chan struct{}), cancelFn: func() {}, stop: func(error) {}, err: err}
	close(op.done)
	return op
}

// envelope builds the finished operation's JSON document.
func (op *operation) envelope() []byte {
	env := envelope{Logs: op.logs.drain()}
	if op.client != nil {
		env.Logs = append(op.client.logs.drain(), env.Logs...)
	}
	if op.err != nil {
		env.Error = newErrorRecord(op.err, op.info)
		if env.Error.Kind == kindRateLimit {
			op.mu.Lock()
			env.Error.RetryAfter = op.retryAfter
			op.mu.Unlock()
		}
	} else {
		env.Result = op.result
	}
	out, err := json.Marshal(env)
	if err != nil {
		out, _ = json.Marshal(envelope{Error: newErrorRecord(fmt.Errorf("failed to encode a result: %w", err), nil)})
	}
	return out
}

// setRetryAfter records a 429's Retry-After. When the registry requests a
// longer wait than the call has left, the call stops at once: waiting
// could only end in a timeout.
func (op *operation) setRetryAfter(header string) {
	now := time.Now()
	op.mu.Lock()
	op.rateLimited = true
	seconds, ok := parseRetryAfter(header, now)
	if ok {
		op.retryAfter = &seconds
	}
	op.mu.Unlock()

	if ok && !op.deadline.IsZero() && now.Add(time.Duration(seconds*float64(time.Second))).After(op.deadline) {
		op.stop(&kindError{kind: kindRateLimit, err: fmt.Errorf(
			"rate limit exceeded [http 429]: the registry asked to wait %.1f s, longer than the %.1f s left before the timeout",
			seconds, op.deadline.Sub(now).Seconds())})
	}
}

func (op *operation) recordContentLength(url, header string) {
	length, err := strconv.ParseInt(header, 10, 64)
	if err != nil {
		return
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.contentLengths == nil {
		op.contentLengths = map[string]int64{}
	}
	op.contentLengths[url] = length
}

// contentLength returns the last Content-Length seen for a URL ending
// with suffix, or -1.
func (op *operation) contentLength(suffix string) int64 {
	op.mu.Lock()
	defer op.mu.Unlock()
	for url, length := range op.contentLengths {
		if strings.HasSuffix(url, suffix) {
			return length
		}
	}
	return -1
}

func operationFromContext(ctx context.Context) *operation {
	op, _ := ctx.Value(opContextKey{}).(*operation)
	return op
}

// wait reports whether the operation finished within d. A negative d waits
// without limit and a zero d only polls.
func (op *operation) wait(d time.Duration) bool {
	if d < 0 {
		<-op.done
		return true
	}
	if d == 0 {
		select {
		case <-op.done:
			return true
		default:
			return false
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-op.done:
		return true
	case <-timer.C:
		return false
	}
}

func (op *operation) cancel() {
	op.cancelFn()
}

// contextError explains an error from a call whose context ended. A
// rate-limit stop, or a timeout spent waiting on 429 responses, is a rate
// limit. A timeout while regclient retried a failed connection is a
// connection error. Otherwise the context's own error wins, because
// regclient may wrap a cancellation in an unrelated error.
func (op *operation) contextError(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, ctx.Err()) {
		return cause
	}
	op.mu.Lock()
	rateLimited := op.rateLimited
	op.mu.Unlock()
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	if rateLimited && timedOut {
		return &kindError{kind: kindRateLimit, err: fmt.Errorf("timed out while the registry responded with 429 Too Many Requests: %w", err)}
	}
	if timedOut && op.info != nil {
		if failure := op.client.transportErrorSince(op.info.Registry, op.started); failure != "" {
			return &kindError{kind: kindConnection, err: fmt.Errorf("connection to %s failed, retried until the timeout: %s", op.info.Registry, failure)}
		}
	}
	if strings.Contains(err.Error(), ctx.Err().Error()) {
		// The message already contains the context's error, so wrap it without repeating it.
		return fmt.Errorf("%w%.0w", err, ctx.Err())
	}
	return fmt.Errorf("%w: %w", ctx.Err(), err)
}
