//go:build windows

package main

// notifyDone is not supported on Windows, where the asyncio client waits
// on a thread instead of a file descriptor.
func notifyDone(fd int, handle uintptr) {}
