//go:build !windows

package main

/*
#include <stdint.h>
#include <stdlib.h>

// rcx_slot carries one request in and its result out, without the caller
// entering the Go runtime. The caller allocates it and its request, fills
// the first five fields, then writes its address to the submit pipe. Go
// fills the result, sets done and then writes id to notify_fd. After that
// the caller reads the result, frees both result buffers with the function
// rcx_free_function returns, and frees the slot itself. binding/rcx_abi.h
// mirrors the struct.
typedef struct {
	uint64_t id;
	uintptr_t client;
	const char *request;
	size_t request_len;
	int32_t notify_fd;
	// cancelled is set by the caller before rcx_slot_cancel, so a cancel
	// that arrives before Go has read the slot still applies.
	int32_t cancelled;
	// done is set by Go once the result is in place.
	int32_t done;
	int32_t code;
	char *meta;
	size_t meta_len;
	char *body;
	size_t body_len;
} rcx_slot;

static void *rcx_free_address(void) { return (void *)free; }
*/
import "C"

import (
	"encoding/binary"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// slotRecordSize is the size of one submit pipe record: a slot address.
const slotRecordSize = 8

var (
	submitOnce sync.Once
	submitFd   = -1

	// runningSlots maps the ids of submitted slots to their operations, so
	// rcx_slot_cancel can find them. An operation leaves it before it
	// notifies.
	runningSlotsMu sync.Mutex
	runningSlots   = map[uint64]*operation{}
)

// rcx_slot_size returns sizeof(rcx_slot), so the caller can refuse a
// library whose layout differs from its own.
//
//export rcx_slot_size
func rcx_slot_size() C.size_t {
	return C.size_t(unsafe.Sizeof(C.rcx_slot{}))
}

// rcx_free_function returns the free() that releases the result buffers of
// a slot. Calling it does not enter the Go runtime, unlike rcx_free.
//
//export rcx_free_function
func rcx_free_function() unsafe.Pointer {
	return C.rcx_free_address()
}

// rcx_submit_fd returns the write end of the submit pipe, or -1 when it
// cannot be made. The first call makes the pipe and starts the goroutine
// that reads it. A caller submits a slot by writing its address (8 bytes,
// native byte order) there. The write never enters the Go runtime, so a
// thread that submits never waits for a Go scheduler slot.
//
//export rcx_submit_fd
func rcx_submit_fd() (fd C.int) {
	defer func() {
		if recover() != nil {
			fd = -1
		}
	}()
	submitOnce.Do(func() {
		fds, err := closeOnExecPipe()
		if err != nil {
			return
		}
		// A non-blocking read end lets os.File wait in the netpoller
		// instead of holding a thread.
		if err := syscall.SetNonblock(fds[0], true); err != nil {
			syscall.Close(fds[0])
			syscall.Close(fds[1])
			return
		}
		submitFd = fds[1]
		submitReadFd = fds[0]
		go readSubmissions(os.NewFile(uintptr(fds[0]), "rcx-submit"))
	})
	return C.int(submitFd)
}

// rcx_slot_cancel cancels the operation of a submitted slot. The caller
// sets the slot's cancelled flag first, which covers a slot Go has not read
// yet. An id that already finished, or never existed, is ignored.
//
//export rcx_slot_cancel
func rcx_slot_cancel(id C.uint64_t) {
	defer recoverSilently()
	runningSlotsMu.Lock()
	op := runningSlots[uint64(id)]
	runningSlotsMu.Unlock()
	if op != nil {
		op.cancel()
	}
}

// readSubmissions starts an operation for every slot address read from
// the submit pipe. It runs for the life of the process, and pollAfterCall
// reads the same pipe at times. The binding writes each record in one
// write of 8 bytes, which a pipe keeps whole, and both readers read whole
// multiples of 8 bytes, so no read returns part of a record.
func readSubmissions(pipe *os.File) {
	buf := make([]byte, slotRecordSize*512)
	for {
		n, err := pipe.Read(buf)
		if err != nil && n == 0 {
			// The read end is never closed, so a failure is transient. The
			// pause keeps a persistent one from spinning a CPU.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		startRecords(buf[:n])
	}
}

// startRecords starts the slot that each whole record in buf addresses.
func startRecords(buf []byte) {
	for off := 0; off+slotRecordSize <= len(buf); off += slotRecordSize {
		addr := uintptr(binary.NativeEndian.Uint64(buf[off:]))
		startSlot((*C.rcx_slot)(unsafe.Pointer(addr)))
	}
}

// startSlot starts the operation a slot requests, on its own goroutine.
func startSlot(s *C.rcx_slot) {
	op := operationFor(C.uintptr_t(s.client), s.request, s.request_len)
	// The binding counts slots from start to free, so liveOperations,
	// which counts rcx_op_start handles, leaves them out.
	id := uint64(s.id)
	runningSlotsMu.Lock()
	runningSlots[id] = op
	runningSlotsMu.Unlock()
	// Counted after the slot is in runningSlots, as pollAfterCall expects.
	slotsStarted.Add(1)
	// A cancel that found no operation in runningSlots set this flag first.
	if atomic.LoadInt32((*int32)(unsafe.Pointer(&s.cancelled))) != 0 {
		op.cancel()
	}
	began := time.Now()
	go func() {
		if op.ctx != nil {
			op.run(op.ctx, op.req)
		}
		finishSlot(s, id, op)
		pollAfterCall(time.Since(began))
	}()
}

// finishSlot writes an operation's result into its slot and notifies. The
// slot belongs to the caller again from the moment the record is written.
func finishSlot(s *C.rcx_slot, id uint64, op *operation) {
	runningSlotsMu.Lock()
	delete(runningSlots, id)
	runningSlotsMu.Unlock()
	func() {
		defer func() {
			if p := recover(); p != nil {
				op.err = panicError(p)
				C.free(unsafe.Pointer(s.body))
				C.free(unsafe.Pointer(s.meta))
				s.body, s.body_len = nil, 0
				setBuffer(&s.meta, &s.meta_len, encodeError(op.err))
			}
		}()
		s.code = codeOK
		setBuffer(&s.meta, &s.meta_len, op.envelope())
		if op.err != nil {
			s.code = codeError
			s.body, s.body_len = nil, 0
			return
		}
		setBuffer(&s.body, &s.body_len, op.body)
	}()
	if op.err != nil {
		s.code = codeError
	}
	fd := int(s.notify_fd)
	atomic.StoreInt32((*int32)(unsafe.Pointer(&s.done)), 1)
	notifyDone(fd, id)
}
