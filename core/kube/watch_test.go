package kube

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/rorokube/roro/internal/testport"
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

// TestWaitHealthyEndsWhenTheClusterIsGone: a wait for health whose API server stops
// answering ends, after the outage grace, with an UnreachableError instead of running to its
// timeout.
func TestWaitHealthyEndsWhenTheClusterIsGone(t *testing.T) {
	addr := testport.Reserve(t).Addr() // nothing listens: every request is refused
	c, err := NewCluster(&rest.Config{Host: "http://" + addr}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.OutageGrace = 300 * time.Millisecond
	parent := &Parent{Set: ApplySet{ID: "x", ParentNamespace: "ns"}, GroupKinds: []schema.GroupKind{{Kind: "ConfigMap"}}, Namespaces: []string{"ns"}}
	want := &unstructured.Unstructured{}
	want.SetAPIVersion("v1")
	want.SetKind("ConfigMap")
	want.SetName("x")
	want.SetNamespace("ns")
	start := time.Now()
	err = c.WaitHealthy(context.Background(), parent, []*unstructured.Unstructured{want}, time.Minute, nil)
	var u *UnreachableError
	if !errors.As(err, &u) || time.Since(start) > 5*time.Second {
		t.Fatalf("after %s: %v (%T), want an UnreachableError soon after the grace", time.Since(start), err, err)
	}
}

// TestConnectBeforeTheKubeconfigExists: a kubeconfig that is not written yet (a sandbox that
// is still starting) is an unreachable cluster that says so, not a load failure.
func TestConnectBeforeTheKubeconfigExists(t *testing.T) {
	_, err := Connect(context.Background(), ConnectOptions{Kubeconfig: t.TempDir() + "/kubeconfig"})
	var u *UnreachableError
	if !errors.As(err, &u) || !strings.Contains(u.Reason(), "does not exist (yet") {
		t.Fatalf("error %v (%T)", err, err)
	}
}
