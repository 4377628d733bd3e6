package gui

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestSingleInstance: a second claim finds the first, which is asked to raise its window; a
// socket left behind by a dead process is taken over; after Close the next claim wins.
func TestSingleInstance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roro", "desktop.sock")
	first, running, err := ClaimSingle(path)
	if err != nil || running {
		t.Fatalf("first claim: %v %v", running, err)
	}
	_, running, err = ClaimSingle(path)
	if err != nil || !running {
		t.Fatalf("second claim: running %v, %v", running, err)
	}
	select {
	case <-first.Raised():
	case <-time.After(2 * time.Second):
		t.Fatal("the first roro was not asked to raise its window")
	}
	first.Close()
	// A stale socket file, its process gone: the next claim takes it over.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	again, running, err := ClaimSingle(path)
	if err != nil || running {
		t.Fatalf("claim over a stale socket: %v %v", running, err)
	}
	again.Close()
}
