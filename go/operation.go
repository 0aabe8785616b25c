package main

import (
	"context"
	"encoding/json"
	"fmt"
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
}

// operation is one request running on its own goroutine. Its fields other
// than done and cancelFn are written once, before done is closed.
type operation struct {
	done     chan struct{}
	cancelFn context.CancelFunc

	meta []byte
	body []byte
	err  error
	info *errorContext
}

func (c *Client) start(raw []byte) *operation {
	var req request
	if err := json.Unmarshal(raw, &req); err != nil {
		return failedOperation(invalidArgument(fmt.Errorf("invalid request: %w", err)))
	}

	ctx, cancel := context.WithCancel(c.ctx)
	if req.TimeoutMs > 0 {
		ctx, cancel = context.WithTimeout(c.ctx, time.Duration(req.TimeoutMs)*time.Millisecond)
	}
	op := &operation{done: make(chan struct{}), cancelFn: cancel}
	liveOperations.Add(1)
	go op.run(ctx, c, req)
	return op
}

func (op *operation) run(ctx context.Context, c *Client, req request) {
	defer close(op.done)
	defer op.cancelFn()
	defer func() {
		if p := recover(); p != nil {
			op.err = panicError(p)
		}
	}()

	info := &errorContext{}
	switch req.Kind {
	case "parse":
		op.meta, op.err = parseReference(req.Image)
		return
	case "config":
	default:
		op.err = invalidArgument(fmt.Errorf("unknown request kind %q", req.Kind))
		return
	}
	result, err := fetchImageConfig(ctx, c.rc, req, info)
	if err != nil {
		op.err, op.info = contextError(ctx, err), info
		return
	}
	op.meta, err = json.Marshal(result.info)
	if err != nil {
		op.err, op.info = err, info
		return
	}
	op.body = result.config
}

// failedOperation returns an operation that has already finished with err.
func failedOperation(err error) *operation {
	op := &operation{done: make(chan struct{}), cancelFn: func() {}, err: err}
	close(op.done)
	liveOperations.Add(1)
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

// contextError prefers the context's own error when the context ended,
// because regclient may wrap a cancellation in an unrelated error.
func contextError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w: %w", ctxErr, err)
	}
	return err
}
