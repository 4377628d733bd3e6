package kube

import (
	"context"
	"net"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// TestWatcherEndsBeforeItsCachesSync: a Watcher of an API server that accepts connections
// but never answers returns as soon as its context ends, although its caches never synced.
func TestWatcherEndsBeforeItsCachesSync(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // accepted, never answered
		}
	}()
	c, err := NewCluster(&rest.Config{Host: "http://" + ln.Addr().String()}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := NewWatcher(c)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Run returned no error, though it never synced")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return within 3 s of its context ending")
	}
}
