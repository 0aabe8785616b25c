//go:build !linux && !windows

package main

import "syscall"

// closeOnExecPipe makes a pipe whose ends are closed on exec. Without
// pipe2 there is a moment when a fork and exec in a thread outside Go can
// inherit them; ForkLock covers forks made by Go.
func closeOnExecPipe() ([2]int, error) {
	var fds [2]int
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	if err := syscall.Pipe(fds[:]); err != nil {
		return fds, err
	}
	syscall.CloseOnExec(fds[0])
	syscall.CloseOnExec(fds[1])
	return fds, nil
}
