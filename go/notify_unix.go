//go:build !windows

package main

import (
	"encoding/binary"
	"syscall"
	"time"
)

// notifyDone writes a slot id to a pipe watched by an event loop or a
// waiting thread. A write of 8 bytes to a pipe is atomic, so records from
// concurrent operations never interleave. The write end is non-blocking.
// When the pipe is full, the goroutine sleeps and retries, because a
// blocked write would hold an OS thread for each of thousands of calls.
func notifyDone(fd int, id uint64) {
	var buf [8]byte
	binary.NativeEndian.PutUint64(buf[:], id)
	pause := 50 * time.Microsecond
	for {
		_, err := syscall.Write(fd, buf[:])
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			time.Sleep(pause)
			pause = min(2*pause, 5*time.Millisecond)
			continue
		}
		return
	}
}
