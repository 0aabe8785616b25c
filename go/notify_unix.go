//go:build !windows

package main

import (
	"encoding/binary"
	"syscall"
	"time"
)

// notifyDone writes an operation handle or slot id to a pipe watched by an
// event loop or a waiting thread. A write of 8 bytes to a pipe is atomic,
// so records from concurrent operations never interleave. The write end is
// non-blocking: when the reader falls behind and the pipe is full, the
// goroutine sleeps and tries again instead of holding an OS thread in a
// blocked write, which a batch of many thousand calls would otherwise do.
func notifyDone(fd int, handle uintptr) {
	var buf [8]byte
	binary.NativeEndian.PutUint64(buf[:], uint64(handle))
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
