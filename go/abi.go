// Package main is the C ABI of regclient-ext, built with -buildmode=c-shared.
//
// Every exported function is listed in this file and nowhere else. Handles
// are runtime/cgo.Handle values passed as uintptr_t. Buffers returned to C
// are allocated with C.malloc and released by the caller with rcx_free.
// Every export recovers panics, so a bug here surfaces as an error record
// instead of taking the host process down.
package main

/*
#include <stdint.h>
#include <stdlib.h>
*/
import "C"

import (
	"bytes"
	"fmt"
	"runtime"
	"runtime/cgo"
	"time"
	"unsafe"
)

// Result codes shared with binding/rcx_abi.h.
const (
	codeOK      = 0
	codeError   = 1
	codePending = 2
)

func main() {}

// rcx_client_new creates a client from JSON options. On failure it returns
// codeError and stores a JSON error record in *errOut.
//
//export rcx_client_new
func rcx_client_new(opts *C.char, optsLen C.size_t, client *C.uintptr_t, errOut **C.char, errLen *C.size_t) (code C.int) {
	defer func() {
		if p := recover(); p != nil {
			setBuffer(errOut, errLen, encodeError(panicError(p)))
			code = codeError
		}
	}()

	c, err := newClient(copyInput(opts, optsLen))
	if err != nil {
		setBuffer(errOut, errLen, encodeError(err))
		return codeError
	}
	*client = C.uintptr_t(cgo.NewHandle(c))
	return codeOK
}

// rcx_client_free releases a client and cancels the operations still
// running on it.
//
//export rcx_client_free
func rcx_client_free(client C.uintptr_t) {
	defer recoverSilently()
	h := cgo.Handle(client)
	h.Value().(*Client).close()
	h.Delete()
}

// rcx_op_start starts a request (JSON) on a client and returns an operation
// handle at once. Errors, including a bad request, become the operation's
// result. Windows calls go this way; POSIX ones go through slots
// (slot_unix.go).
//
//export rcx_op_start
func rcx_op_start(client C.uintptr_t, req *C.char, reqLen C.size_t) C.uintptr_t {
	op := operationFor(client, req, reqLen)
	handle := C.uintptr_t(cgo.NewHandle(op))
	op.launch()
	return handle
}

// operationFor prepares a request on a client. A closed client, a bad
// request or a panic gives an operation that has already failed.
func operationFor(client C.uintptr_t, req *C.char, reqLen C.size_t) (op *operation) {
	defer func() {
		if p := recover(); p != nil {
			op = failedOperation(panicError(p))
		}
	}()
	c, ok := clientFromHandle(client)
	if !ok {
		return failedOperation(&kindError{kind: kindCanceled, err: errClientClosed})
	}
	return c.newOperation(copyInput(req, reqLen))
}

// clientFromHandle resolves a client handle. A handle freed by
// rcx_client_free while another thread was about to use it is reported as
// not ok instead of panicking.
func clientFromHandle(client C.uintptr_t) (c *Client, ok bool) {
	defer func() {
		if recover() != nil {
			c, ok = nil, false
		}
	}()
	c, ok = cgo.Handle(client).Value().(*Client)
	return c, ok
}

// rcx_op_wait blocks for at most timeoutMs milliseconds and returns codeOK
// when the operation has finished, codePending otherwise.
//
//export rcx_op_wait
func rcx_op_wait(op C.uintptr_t, timeoutMs C.int64_t) (code C.int) {
	defer func() {
		if recover() != nil {
			code = codeOK
		}
	}()

	if cgo.Handle(op).Value().(*operation).wait(time.Duration(timeoutMs) * time.Millisecond) {
		return codeOK
	}
	return codePending
}

// rcx_op_cancel requests that a running operation stop. It returns at once; wait
// on the operation to know when it has stopped.
//
//export rcx_op_cancel
func rcx_op_cancel(op C.uintptr_t) {
	defer recoverSilently()
	cgo.Handle(op).Value().(*operation).cancel()
}

// rcx_op_result copies a finished operation's result into C buffers: a
// JSON envelope in *meta and the body bytes. It returns codeOK or codeError
// (the envelope then holds an error record), or codePending if the
// operation still runs.
//
//export rcx_op_result
func rcx_op_result(op C.uintptr_t, meta **C.char, metaLen *C.size_t, body **C.char, bodyLen *C.size_t) (code C.int) {
	defer func() {
		if p := recover(); p != nil {
			setBuffer(meta, metaLen, encodeError(panicError(p)))
			code = codeError
		}
	}()

	o := cgo.Handle(op).Value().(*operation)
	if !o.wait(0) {
		return codePending
	}
	setBuffer(meta, metaLen, o.envelope())
	if o.err != nil {
		return codeError
	}
	setBuffer(body, bodyLen, o.body)
	return codeOK
}

// rcx_op_free cancels an operation if it still runs and returns at once.
// The handle is released when the operation's goroutine has returned, so
// the caller never waits for a registry to notice the cancellation.
//
//export rcx_op_free
func rcx_op_free(op C.uintptr_t) {
	defer recoverSilently()
	h := cgo.Handle(op)
	o := h.Value().(*operation)
	release := func() {
		h.Delete()
		liveOperations.Add(-1)
	}
	if o.wait(0) {
		release()
		return
	}
	o.cancel()
	go func() {
		o.wait(-1)
		release()
	}()
}

// rcx_free releases a buffer returned by this library.
//
//export rcx_free
func rcx_free(p unsafe.Pointer) {
	C.free(p)
}

// maxInput bounds the JSON documents accepted from C. The Python layer
// sends a few KiB; anything near this is a bug or an attack.
const maxInput = 16 << 20

// copyInput copies a C buffer into Go memory. It panics (and the caller
// recovers) on a length past maxInput, which C.GoBytes's int length could
// not hold on every platform.
func copyInput(p *C.char, n C.size_t) []byte {
	if n > maxInput {
		panic(fmt.Sprintf("input of %d bytes is larger than the %d byte limit", uint64(n), maxInput))
	}
	if n == 0 {
		return nil
	}
	return bytes.Clone(unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)))
}

// setBuffer copies data into a new C buffer. An empty slice still gets a
// valid one-byte allocation so callers never see a NULL pointer.
func setBuffer(out **C.char, outLen *C.size_t, data []byte) {
	p := C.malloc(C.size_t(len(data) + 1))
	if len(data) > 0 {
		copy(unsafe.Slice((*byte)(p), len(data)), data)
	}
	*out = (*C.char)(p)
	*outLen = C.size_t(len(data))
}

func panicError(p any) error {
	return fmt.Errorf("internal error in the Go layer: %v", p)
}

func recoverSilently() {
	_ = recover()
}

// rcx_stats reports how many client and operation handles are not yet
// freed, and the runtime's current GOMAXPROCS.
//
//export rcx_stats
func rcx_stats(clients *C.int64_t, operations *C.int64_t, procs *C.int64_t) {
	*clients = C.int64_t(liveClients.Load())
	*operations = C.int64_t(liveOperations.Load())
	*procs = C.int64_t(runtime.GOMAXPROCS(0))
}
