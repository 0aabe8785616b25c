//go:build !windows

package main

/*
#include <sched.h>
#include <stdint.h>
*/
import "C"

import (
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// A caller that makes calls one after another submits its next request a
// few tens of microseconds after it reads a result. By then the runtime's
// thread has often gone to sleep in epoll, and waking it costs tens of
// microseconds on a virtual machine whose idle CPUs halt. So the goroutine
// that finished a fast call polls the submit pipe for a while (a fifth of
// the binding's spin budget) when no other call runs, yielding between
// reads.
var (
	// spinBudget is the binding's spin budget (REGCLIENT_EXT_SPIN_US); 0
	// turns polling off. A call that took longer is not fast.
	spinBudget atomic.Int64 // nanoseconds
	// pollingSubmissions keeps one goroutine polling at a time.
	pollingSubmissions atomic.Bool
	// submitPolls counts the polls, and submitPollsFinished those that
	// found a request.
	submitPolls         atomic.Int64
	submitPollsFinished atomic.Int64
	// submitReadFd is the non-blocking read end of the submit pipe.
	submitReadFd = -1
	// slotsStarted counts started slots, so a poll ends as soon as
	// readSubmissions starts one instead.
	slotsStarted atomic.Int64
)

// rcx_set_spin_budget sets the spin budget in microseconds.
//
//export rcx_set_spin_budget
func rcx_set_spin_budget(us C.int64_t) {
	defer recoverSilently()
	spinBudget.Store(int64(us) * int64(time.Microsecond))
}

// rcx_submit_poll_stats reports how often Go polled for the next request
// and how often one arrived while it polled.
//
//export rcx_submit_poll_stats
func rcx_submit_poll_stats(polls, finished *C.int64_t) {
	defer recoverSilently()
	*polls = C.int64_t(submitPolls.Load())
	*finished = C.int64_t(submitPollsFinished.Load())
}

// pollAfterCall polls for the next request if the call that just finished
// took no longer than the spin budget and no other call runs. It stops as
// soon as any slot starts, including one that readSubmissions read, so it
// never spins beside a running call.
func pollAfterCall(took time.Duration) {
	budget := time.Duration(spinBudget.Load())
	if budget == 0 || took > budget || submitReadFd < 0 {
		return
	}
	// Loaded before the idle check. A slot that starts after the check is
	// counted after it is in runningSlots, so the loop below detects it.
	started := slotsStarted.Load()
	runningSlotsMu.Lock()
	idle := len(runningSlots) == 0
	runningSlotsMu.Unlock()
	if !idle || !pollingSubmissions.CompareAndSwap(false, true) {
		return
	}
	defer pollingSubmissions.Store(false)
	submitPolls.Add(1)

	// A read into a buffer of whole records never splits one (see
	// readSubmissions), so both can read the pipe.
	var buf [slotRecordSize * 64]byte
	deadline := time.Now().Add(budget / 5)
	for time.Now().Before(deadline) && slotsStarted.Load() == started {
		n, err := syscall.Read(submitReadFd, buf[:])
		if n > 0 {
			submitPollsFinished.Add(1)
			startRecords(buf[:n])
			return
		}
		if err != syscall.EAGAIN && err != syscall.EINTR {
			return
		}
		// Let other goroutines run, then give the CPU to other threads.
		runtime.Gosched()
		C.sched_yield()
	}
}
