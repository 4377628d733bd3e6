package runtime

import (
	"context"
	"testing"
	"time"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/internal/testcluster"
)

// kubeEngine starts an engine over ws on the test cluster, with the given changes to its
// options; it closes when the test ends.
func kubeEngine(t testing.TB, tc *testcluster.Cluster, ws *workspace.Workspace, mods ...func(*Options)) *Engine {
	t.Helper()
	opts := Options{
		Connect:    KubeConnector(tc.Kubeconfig, "", kube.DefaultTimeout, time.Now, nil),
		LookupHost: func(k string) (string, bool) { return "tester", k == "USER" },
	}
	for _, m := range mods {
		m(&opts)
	}
	e, err := New(ws, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// runUp runs an up to its end.
func runUp(ctx context.Context, e *Engine, req UpRequest) error {
	op, err := e.Up(req)
	if err != nil {
		return err
	}
	return op.Wait(ctx)
}

// runDown runs a down to its end.
func runDown(ctx context.Context, e *Engine, req DownRequest) ([]DownResult, error) {
	op, err := e.Down(req)
	if err != nil {
		return nil, err
	}
	err = op.Wait(ctx)
	return op.DownResults(), err
}

// waitFor waits until the engine's snapshot satisfies ok, failing the test after timeout.
func waitFor(t testing.TB, e *Engine, timeout time.Duration, ok func(*Snapshot) bool) *Snapshot {
	t.Helper()
	changed, stop := e.Subscribe()
	defer stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if s := e.Snapshot(); ok(s) {
			return s
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no snapshot as wanted within %s; the last: %+v", timeout, e.Snapshot())
		}
	}
}

// eventually polls cond until it holds, failing the test after timeout; for state outside
// the engine's snapshot (a fake's calls).
func eventually(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not so within %s", timeout)
		}
	}
}
