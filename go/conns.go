package main

import (
	"errors"
	"net"
	"sync"
)

// connSet contains the connections a client's calls dialed, so closing the
// client closes them. Otherwise idle keep-alive connections would outlive
// the client until net/http's 90 s idle timeout, and a process that makes
// and closes clients, one per tenant, would run out of file descriptors.
// NOTE: regclient sends token requests without the call's context, so
// their connections are not tracked and still wait for the idle timeout.
type connSet struct {
	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

// trackedConn removes itself from its set when closed.
type trackedConn struct {
	net.Conn
	set  *connSet
	once sync.Once
}

func (t *trackedConn) Close() error {
	t.once.Do(func() {
		t.set.mu.Lock()
		delete(t.set.conns, t)
		t.set.mu.Unlock()
	})
	return t.Conn.Close()
}

// errClientClosed is the error of a call or a dial on a closed client.
var errClientClosed = errors.New("the client is closed")

// track wraps a new connection, or closes it and fails when the client is
// already closed.
func (s *connSet) track(conn net.Conn) (net.Conn, error) {
	t := &trackedConn{Conn: conn, set: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = conn.Close()
		return nil, errClientClosed
	}
	if s.conns == nil {
		s.conns = map[*trackedConn]struct{}{}
	}
	s.conns[t] = struct{}{}
	return t, nil
}

// closeAll closes every tracked connection and any dialed later.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for t := range conns {
		_ = t.Conn.Close()
	}
}
