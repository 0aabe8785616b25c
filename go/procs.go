package main

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The Go runtime here runs registry calls that mostly wait on the network.
// With one call in flight, every goroutine hand-off inside net/http makes
// the scheduler wake an idle thread to steal work. A sequential caller took
// about 12% less time per fetch with one P than with two, on a 2-vCPU VM
// (docs/benchmarks.md). With many calls in flight the extra threads pay for
// themselves. So the runtime runs with one P while calls arrive one at a
// time, returns to its default as soon as two overlap, and narrows again
// after a quiet spell. A GOMAXPROCS environment variable turns this off.

// quietSpell is how long at most one call must have been in flight before
// the runtime narrows to one P again.
const quietSpell = 250 * time.Millisecond

var (
	// adaptiveProcs is set when the default is more than one P (it
	// follows the CPU count and any cgroup CPU limit) and no GOMAXPROCS
	// variable chose one.
	adaptiveProcs = os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) > 1

	callsInFlight atomic.Int64
	// lastOverlap is when two calls last ran at once, in UnixNano.
	lastOverlap atomic.Int64

	procsMu sync.Mutex
	wide    atomic.Bool
)

func init() {
	if adaptiveProcs {
		runtime.GOMAXPROCS(1)
	}
}

// callStarted records a call going into flight, widening the runtime when
// calls overlap.
func callStarted() {
	if callsInFlight.Add(1) < 2 || !adaptiveProcs {
		return
	}
	lastOverlap.Store(time.Now().UnixNano())
	if wide.Load() {
		return
	}
	procsMu.Lock()
	defer procsMu.Unlock()
	if wide.Load() {
		return
	}
	runtime.SetDefaultGOMAXPROCS()
	wide.Store(true)
	go narrowWhenQuiet()
}

func callFinished() {
	callsInFlight.Add(-1)
}

// narrowWhenQuiet returns the runtime to one P once calls have stopped
// overlapping for a quiet spell.
func narrowWhenQuiet() {
	for {
		time.Sleep(quietSpell)
		if callsInFlight.Load() > 1 || time.Since(time.Unix(0, lastOverlap.Load())) < quietSpell {
			continue
		}
		procsMu.Lock()
		// wide is cleared before the check. A callStarted that stores its
		// overlap after the check reads false and widens again under the
		// lock, and one that stored it before fails the check here.
		wide.Store(false)
		if callsInFlight.Load() > 1 || time.Since(time.Unix(0, lastOverlap.Load())) < quietSpell {
			wide.Store(true)
			procsMu.Unlock()
			continue
		}
		runtime.GOMAXPROCS(1)
		procsMu.Unlock()
		return
	}
}
