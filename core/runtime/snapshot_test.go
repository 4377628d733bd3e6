package runtime

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testfs"
)

// oneApp writes a workspace with app "one" in namespace ns: a Deployment and a ConfigMap.
func oneApp(t testing.TB, ns string) string {
	dir := testfs.Layout(t, map[string]string{
		"roro.json":         `{"name": "snap", "members": ["apps/*"]}`,
		"apps/one/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"]}`,
		"apps/one/m.yaml":   "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: one\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: one}\n  template:\n    metadata:\n      labels: {app: one}\n    spec:\n      containers:\n      - {name: c, image: example.invalid/one:1}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n",
	})
	return dir
}

func snapshotRuntime(t testing.TB, tc *testcluster.Cluster, dir string) *Runtime {
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &Runtime{WS: ws, Connect: func(ctx context.Context, _ string) (*kube.Cluster, error) {
		return kube.Connect(ctx, kube.ConnectOptions{Kubeconfig: tc.Kubeconfig})
	}}
}

// startWatcher runs a Watcher on the test cluster until the test ends.
func startWatcher(t testing.TB, tc *testcluster.Cluster) *Watcher {
	c, err := kube.Connect(context.Background(), kube.ConnectOptions{Kubeconfig: tc.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(c, nil)
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	t.Cleanup(func() {
		w.Stop()
		w.Stop() // idempotent
		if err := <-done; err != nil {
			t.Errorf("watcher: %v", err)
		}
	})
	select {
	case <-w.Ready():
	case err := <-done:
		t.Fatalf("watcher ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("watcher not ready after 30 s")
	}
	return w
}

// waitSnapshot waits for a snapshot that satisfies ok, by subscription.
func waitSnapshot(t testing.TB, w *Watcher, timeout time.Duration, ok func(*Snapshot) bool) *Snapshot {
	ch, cancel := w.Subscribe()
	defer cancel()
	deadline := time.After(timeout)
	for {
		if s := w.Snapshot(); ok(s) {
			return s
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no matching snapshot within %s; last: %+v", timeout, w.Snapshot())
			return nil
		}
	}
}

// TestWatcherFollowsUpAndDown: the snapshot shows an instance progress to healthy after up,
// with its objects, and drops it after down, from watch events alone.
func TestWatcherFollowsUpAndDown(t *testing.T) {
	tc := testcluster.Get(t)
	w := startWatcher(t, tc)
	rt := snapshotRuntime(t, tc, oneApp(t, "roro-snap-test"))
	ctx := testcluster.Context(t, time.Minute)
	t.Cleanup(func() { _, _ = rt.Down(context.Background(), DownOptions{}) })
	before := w.Snapshot().Version
	if err := rt.Up(ctx, UpOptions{NoWait: true}); err != nil {
		t.Fatal(err)
	}
	s := waitSnapshot(t, w, 30*time.Second, func(s *Snapshot) bool {
		iv := s.Instance("one", "default")
		return iv != nil && iv.Health == Healthy && len(iv.Objects) == 2
	})
	if s.Version <= before {
		t.Errorf("version %d did not grow past %d", s.Version, before)
	}
	iv := s.Instance("one", "default")
	if iv.Namespace != "roro-snap-test" || iv.Workspace != "snap" {
		t.Errorf("instance view %+v", iv)
	}
	kinds := []string{iv.Objects[0].Kind, iv.Objects[1].Kind}
	if !slices.Equal(kinds, []string{"ConfigMap", "Deployment"}) {
		t.Errorf("objects %v", kinds)
	}
	if _, err := rt.Down(ctx, DownOptions{}); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, w, 30*time.Second, func(s *Snapshot) bool { return s.Instance("one", "default") == nil })
}

// BenchmarkSnapshotDelay measures the delay from a Deployment turning Available (seen by a
// plain watch on it) to the Watcher's snapshot showing its instance healthy (target: under
// 500 ms). Each iteration brings the app up in a fresh namespace.
func BenchmarkSnapshotDelay(b *testing.B) {
	tc := testcluster.Get(b)
	w := startWatcher(b, tc)
	ctx := context.Background()
	var delays []time.Duration
	for i := range b.N {
		ns := fmt.Sprintf("roro-snap-bench-%d-%d", time.Now().UnixNano()%1e6, i)
		rt := snapshotRuntime(b, tc, oneApp(b, ns))
		watch, err := tc.Kube.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=one"})
		if err != nil {
			b.Fatal(err)
		}
		available := make(chan time.Time, 1)
		go func() {
			for ev := range watch.ResultChan() {
				if d, ok := ev.Object.(*appsv1.Deployment); ok {
					for _, c := range d.Status.Conditions {
						if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
							available <- time.Now()
							return
						}
					}
				}
			}
		}()
		if err := rt.Up(ctx, UpOptions{NoWait: true}); err != nil {
			b.Fatal(err)
		}
		waitSnapshot(b, w, 30*time.Second, func(s *Snapshot) bool {
			iv := s.Instance("one", "default")
			return iv != nil && iv.Namespace == ns && iv.Health == Healthy
		})
		shown := time.Now()
		var at time.Time
		select {
		case at = <-available:
		case <-time.After(30 * time.Second):
			b.Fatal("the Deployment's watch never saw it Available")
		}
		watch.Stop()
		delays = append(delays, shown.Sub(at))
		_, _ = rt.Down(ctx, DownOptions{})
	}
	slices.Sort(delays)
	b.ReportMetric(float64(delays[len(delays)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(delays[len(delays)-1].Microseconds())/1000, "ms-max")
}
