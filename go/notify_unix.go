//go:build !windows

package main

import (
	"encoding/binary"
	"syscall"
)

// notifyDone writes an operation handle to a pipe or eventfd watched by an
// event loop. A write of 8 bytes to a pipe is atomic, so records from
// concurrent operations never interleave.
func notifyDone(fd int, handle uintptr) {
	var buf [8]byte
	binary.NativeEndian.PutUint64(buf[:], uint64(handle))
	for {
		_, err := syscall.Write(fd, buf[:])
		if err != syscall.EINTR {
			return
		}
	}
}
