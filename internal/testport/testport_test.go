package testport

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
)

// TestReserve: a reserved port refuses connections, is never handed out as an ephemeral
// port, can be listened on by one SO_REUSEADDR listener at a time (as kubectl or sshd would),
// and is reserved again, never handed out, once that listener is closed.
func TestReserve(t *testing.T) {
	p := Reserve(t)
	if _, err := net.Dial("tcp", p.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a reserved port: %v, want connection refused", err)
	}
	ephemeralAvoiding(t, p.Number, "the kernel handed out reserved port %d")
	other, err := net.Listen("tcp", p.Addr())
	if err != nil {
		t.Fatalf("a program cannot listen on the reserved port: %v", err)
	}
	if l, err := net.Listen("tcp", p.Addr()); err == nil {
		l.Close()
		t.Fatal("two listeners on the reserved port at once")
	}
	other.Close()
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		c.Close()
		t.Fatal("the port answers after its listener closed; want it reserved again")
	}
	ephemeralAvoiding(t, p.Number, "the kernel handed out port %d after its listener closed")
	l, err := net.Listen("tcp", p.Addr())
	if err != nil {
		t.Fatalf("listen once the port is free again: %v", err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("dial the reservation's listener: %v", err)
	}
	c.Close()
}

// ephemeralAvoiding listens on 2,000 ephemeral ports, held until the test ends, failing with
// msg (given the port) if the kernel hands out port.
func ephemeralAvoiding(t *testing.T, port int, msg string) {
	t.Helper()
	for range 2000 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if l.Addr().(*net.TCPAddr).Port == port {
			t.Fatalf(msg, port)
		}
	}
}

// TestReserveAt: a fixed port can be reserved while nothing listens on it, and reserving it
// while something does fails, naming the port.
func TestReserveAt(t *testing.T) {
	p := Reserve(t)
	q := ReserveAt(t, p.Number) // a second reservation of the same port is allowed, as a listener is
	if q.Number != p.Number {
		t.Fatalf("reserved %d, asked for %d", q.Number, p.Number)
	}
	l, err := net.Listen("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ft := &fatalT{TB: t}
	func() {
		defer func() { _ = recover() }()
		ReserveAt(ft, p.Number)
	}()
	if !strings.Contains(ft.msg, "reserve port "+p.String()+" on 127.0.0.1") {
		t.Errorf("reserving a listened-on port said %q", ft.msg)
	}
}

// fatalT records Fatalf's message and stops the caller as Fatalf does (by panicking here,
// recovered by the test, rather than by runtime.Goexit).
type fatalT struct {
	testing.TB
	msg string
}

func (f *fatalT) Helper() {}

func (f *fatalT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f.msg)
}
