package main

import "syscall"

// closeOnExecPipe makes a pipe whose ends are closed on exec from the
// start, so a fork and exec in another thread cannot inherit them.
func closeOnExecPipe() ([2]int, error) {
	var fds [2]int
	err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC)
	return fds, err
}
