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

// watchingEngine starts an engine with watches over the workspace in dir, on the test
// cluster, and waits until it is connected.
func watchingEngine(t testing.TB, tc *testcluster.Cluster, dir string) *Engine {
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := kubeEngine(t, tc, ws, func(o *Options) { o.Watch = true })
	waitFor(t, e, 30*time.Second, func(s *Snapshot) bool {
		return len(s.Connections) == 1 && s.Connections[0].State == Connected && s.Connections[0].Synced
	})
	return e
}

// instanceOf finds an instance in a snapshot, or nil.
func instanceOf(s *Snapshot, app, instance string) *InstanceView {
	if a := s.App(app); a != nil {
		return a.Instance(instance)
	}
	return nil
}

// TestEngineFollowsUpAndDown: the snapshot shows the app before it runs (not running, with
// its namespace), then its instance progress to healthy after up, with its objects, and
// not running again after down, from watch events alone.
func TestEngineFollowsUpAndDown(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-snap-test")
	rt := watchingEngine(t, tc, oneApp(t, ns))
	ctx := testcluster.Context(t, time.Minute)
	t.Cleanup(func() { _, _ = runDown(context.Background(), rt, DownRequest{}) })
	first := rt.Snapshot()
	if iv := instanceOf(first, "one", "default"); iv == nil || iv.Running || iv.Health != NotRunning || iv.Namespace != ns {
		t.Fatalf("before up: %+v", iv)
	}
	before := first.Version
	if err := runUp(ctx, rt, UpRequest{NoWait: true}); err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, rt, 30*time.Second, func(s *Snapshot) bool {
		iv := instanceOf(s, "one", "default")
		return iv != nil && iv.Health == Healthy && len(iv.Objects) == 2 && len(s.Operations) == 1 && s.Operations[0].State != OpRunning
	})
	if s.Version <= before {
		t.Errorf("version %d did not grow past %d", s.Version, before)
	}
	iv := instanceOf(s, "one", "default")
	if iv.Namespace != ns || iv.Workspace != "snap" || !iv.Running {
		t.Errorf("instance view %+v", iv)
	}
	kinds := []string{iv.Objects[0].Ref.Kind, iv.Objects[1].Ref.Kind}
	if !slices.Equal(kinds, []string{"ConfigMap", "Deployment"}) {
		t.Errorf("objects %v", kinds)
	}
	if len(s.Operations) == 0 || s.Operations[0].Kind != OpUp || s.Operations[0].State != OpSucceeded {
		t.Errorf("operations after up: %+v", s.Operations)
	}
	if _, err := runDown(ctx, rt, DownRequest{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, rt, 30*time.Second, func(s *Snapshot) bool {
		iv := instanceOf(s, "one", "default")
		return iv != nil && !iv.Running && iv.Health == NotRunning
	})
}

// BenchmarkSnapshotDelay measures the delay from a Deployment turning Available (seen by a
// plain watch on it) to the engine's snapshot showing its instance healthy (target: under
// 500 ms). Each iteration brings the app up in a fresh namespace.
func BenchmarkSnapshotDelay(b *testing.B) {
	tc := testcluster.Get(b)
	ctx := context.Background()
	var delays []time.Duration
	// One engine for the whole run, as the window keeps one: each iteration reloads the
	// workspace with the app in a new namespace.
	dir := oneApp(b, "roro-snap-bench-warmup")
	rt := watchingEngine(b, tc, dir)
	for i := range b.N {
		ns := fmt.Sprintf("roro-snap-bench-%d-%d", time.Now().UnixNano()%1e6, i)
		testfs.Write(b, dir, map[string]string{"apps/one/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"]}`})
		ws, err := workspace.Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.Reload(ws); err != nil {
			b.Fatal(err)
		}
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
		if err := runUp(ctx, rt, UpRequest{NoWait: true}); err != nil {
			b.Fatal(err)
		}
		waitFor(b, rt, 30*time.Second, func(s *Snapshot) bool {
			iv := instanceOf(s, "one", "default")
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
		_, _ = runDown(ctx, rt, DownRequest{})
	}
	slices.Sort(delays)
	b.ReportMetric(float64(delays[len(delays)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(delays[len(delays)-1].Microseconds())/1000, "ms-max")
}
