// Package testport reserves local TCP ports for tests without freeing and re-binding them.
//
// A test that needs a fixed port (one written into a workspace, or passed to a process
// such as kubectl or sshd that cannot report the port it picked) usually listens on port 0,
// reads the port and closes the listener, hoping no one takes the port before the real
// owner binds it. Reserve instead keeps a socket bound to the port, with SO_REUSEADDR and
// never listening, for the test's life:
//   - the kernel never hands the port out to anyone asking for an ephemeral port;
//   - a connection to it is refused, as to a closed port;
//   - a program that listens with SO_REUSEADDR (every Go listener, kubectl, sshd) can still
//     listen on it, one at a time, and once that listener is closed the port is reserved
//     again: a test that wants the port to answer listens on Addr itself.
package testport

import (
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
)

// Port is a reserved port on 127.0.0.1.
type Port struct {
	// Number is the port number.
	Number int
	file   *os.File
}

// Reserve binds a socket to a new port on 127.0.0.1 and keeps it, not listening, until the
// test ends.
func Reserve(t testing.TB) *Port {
	t.Helper()
	return ReserveAt(t, 0)
}

// ReserveAt reserves a given port on 127.0.0.1 (0 picks a new one), for a test of something
// whose port is fixed, such as the demo workspace's forwards; the test fails at once, naming
// the port, if something already listens on it.
func ReserveAt(t testing.TB, port int) *Port {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("reserve a port: socket: %v", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		t.Fatalf("reserve a port: SO_REUSEADDR: %v", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		syscall.Close(fd)
		t.Fatalf("reserve port %d on 127.0.0.1: %v (is something listening on it? this test needs it free)", port, err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		t.Fatalf("reserve a port: getsockname: %v", err)
	}
	p := &Port{Number: sa.(*syscall.SockaddrInet4).Port, file: os.NewFile(uintptr(fd), "reserved port")}
	t.Cleanup(func() { p.file.Close() })
	return p
}

// Addr is the port's host:port on 127.0.0.1.
func (p *Port) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Number)) }

// String is the port number, for command lines and workspace files.
func (p *Port) String() string { return strconv.Itoa(p.Number) }
