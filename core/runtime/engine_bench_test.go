package runtime

import (
	"context"
	"fmt"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/forward"
	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testfs"
)

// percentile returns the p-th percentile (0–100) of sorted durations, in µs.
func percentile(sorted []time.Duration, p float64) float64 {
	i := int(float64(len(sorted)-1) * p / 100)
	return float64(sorted[i].Nanoseconds()) / 1e3
}

// BenchmarkSnapshotPublish measures the time from a change in the engine to a subscriber
// holding the snapshot that shows it (p50 and p99, µs), with the demo workspace loaded and
// 10 forwards running (their statuses are in every snapshot). Target: p99 under 1 ms.
func BenchmarkSnapshotPublish(b *testing.B) {
	ws, err := workspace.Load(filepath.Join("..", "..", "fixtures", "demo"))
	if err != nil {
		b.Fatal(err)
	}
	fc := newFakeCluster()
	e := fakeEngine(b, ws, fc)
	waitFor(b, e, 5*time.Second, func(s *Snapshot) bool { return s.Connections[0].State == Connected })
	for i := range 10 {
		t := Target{WS: ws, App: ws.App("api"), Environment: "dev"}
		t.Instance.Name, t.Instance.Namespace = fmt.Sprintf("i%d", i), "demo-api"
		if err := e.startForwards(context.Background(), fc, t); err != nil {
			b.Fatal(err)
		}
	}
	if n := len(e.Snapshot().Forwards); n < 10 {
		waitFor(b, e, 5*time.Second, func(s *Snapshot) bool { return len(s.Forwards) == 10 })
	}
	ch, stop := e.Subscribe()
	defer stop()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		e.SetGit(GitView{State: "synced", Ahead: i + 1})
		for e.Snapshot().Git.Ahead != i+1 {
			<-ch
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 50), "µs-p50")
	b.ReportMetric(percentile(lat, 99), "µs-p99")
	b.ReportMetric(percentile(lat, 100), "µs-max")
}

// BenchmarkEngineMemory measures the heap an engine holds with the demo workspace loaded and
// up (its watches following every instance), and 10 forwards connected to pods: the heap in
// use after a GC, with the engine, minus before it. Target: under 20 MiB.
func BenchmarkEngineMemory(b *testing.B) {
	tc := testcluster.Get(b)
	tc.InstallDevEnvironments(b)
	dir := copyTree(b, "../../fixtures/demo")
	ns := testcluster.UniqueName("roro-mem-echo")
	var forwards []string
	for i := range 10 {
		forwards = append(forwards, fmt.Sprintf(`{"target": "deployment/echo", "ports": ["0:tcp"], "address": "127.0.0.%d"}`, i+1))
	}
	testfs.Write(b, dir, map[string]string{
		"apps/echo/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"], "forwards": [` + strings.Join(forwards, ",") + `]}`,
		"apps/echo/m.yaml":   deployment("echo"),
	})
	ws, err := workspace.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	testcluster.StartBinder(b, tc, ns, "app=echo", testcluster.Echo)
	ctx := testcluster.Context(b, 2*time.Minute)
	heap := func() uint64 {
		var m goruntime.MemStats
		for range 2 {
			goruntime.GC()
		}
		goruntime.ReadMemStats(&m)
		return m.HeapInuse
	}
	for range b.N {
		settle(b)
		before := heap()
		e := kubeEngine(b, tc, ws, func(o *Options) { o.Watch = true })
		if err := runUp(ctx, e, UpRequest{}); err != nil {
			b.Fatal(err)
		}
		if err := e.StartForwards(ctx, "echo", Selection{}); err != nil {
			b.Fatal(err)
		}
		waitFor(b, e, 30*time.Second, func(s *Snapshot) bool {
			n := 0
			for _, f := range s.Forwards {
				if f.State == forward.Connected {
					n++
				}
			}
			healthy := 0
			for _, a := range s.Apps {
				if a.Health == Healthy {
					healthy++
				}
			}
			return n == 10 && healthy == 4
		})
		time.Sleep(time.Second) // let the watches and forwards settle
		after := heap()
		b.ReportMetric(float64(after-before)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(len(e.Snapshot().Forwards)), "forwards")
		_, _ = runDown(ctx, e, DownRequest{})
		_ = e.Close()
	}
}

// wideWorkspace is n independent apps, each a Deployment, a Service and a ConfigMap in its
// own namespace (suffixed), for the parallel up benchmark.
func wideWorkspace(b *testing.B, n int, suffix string) string {
	files := map[string]string{"roro.json": `{"name": "wide", "members": ["apps/*"]}`}
	for i := range n {
		app := fmt.Sprintf("w%d", i)
		files["apps/"+app+"/app.json"] = `{"namespace": "` + app + `-` + suffix + `", "manifests": ["m.yaml"]}`
		files["apps/"+app+"/m.yaml"] = deployment(app) + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: " + app +
			"\nspec:\n  selector: {app: " + app + "}\n  ports:\n  - {port: 80, targetPort: 7000}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + app + "\ndata: {a: b}\n"
	}
	return testfs.Layout(b, files)
}

// BenchmarkUpParallel compares, in one run, up with the apps of each dependency level in
// parallel against one app at a time (the order up used before the engine), on the demo
// workspace (db → api → web, a chain: nothing to run in parallel) and on six independent
// apps. After a warm-up round, five samples each, the two orders alternated (ABBA), each
// from a clean cluster (the namespaces of the last round gone); it reports
// min, median and max of each and the median ratio.
func BenchmarkUpParallel(b *testing.B) {
	tc := testcluster.Get(b)
	tc.InstallDevEnvironments(b)
	ctx := context.Background()
	gone := func(namespaces []string) {
		for _, n := range namespaces {
			_ = testcluster.Poll(ctx, 100*time.Millisecond, func() (bool, error) {
				_, err := tc.Kube.CoreV1().Namespaces().Get(ctx, n, metav1.GetOptions{})
				return apierrors.IsNotFound(err), nil
			})
		}
	}
	run := func(name, dir string, namespaces []string) {
		ws, err := workspace.Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		e := kubeEngine(b, tc, ws, func(o *Options) { o.LookupHost = func(string) (string, bool) { return "", false } })
		// One untimed round first: discovery, the CRD's mapping and the clients warm up.
		if err := runUp(ctx, e, UpRequest{}); err != nil {
			b.Fatal(err)
		}
		if _, err := runDown(ctx, e, DownRequest{DownOptions: DownOptions{Volumes: true}}); err != nil {
			b.Fatal(err)
		}
		gone(namespaces)
		times := map[int][]time.Duration{}
		for i := range 10 {
			parallel := []int{0, 1}[i%2] // 0: all at once, 1: one at a time; alternated
			if i/2%2 == 1 {
				parallel = 1 - parallel
			}
			start := time.Now()
			if err := runUp(ctx, e, UpRequest{Parallel: parallel}); err != nil {
				b.Fatal(err)
			}
			times[parallel] = append(times[parallel], time.Since(start))
			b.Logf("%s sample %d, parallel %d: %s", name, i, parallel, time.Since(start).Round(time.Millisecond))
			if _, err := runDown(ctx, e, DownRequest{DownOptions: DownOptions{Volumes: true}}); err != nil {
				b.Fatal(err)
			}
			gone(namespaces)
		}
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		for p, label := range map[int]string{0: "parallel", 1: "sequential"} {
			slices.Sort(times[p])
			b.ReportMetric(ms(times[p][0]), name+"-"+label+"-ms-min")
			b.ReportMetric(ms(times[p][2]), name+"-"+label+"-ms-med")
			b.ReportMetric(ms(times[p][4]), name+"-"+label+"-ms-max")
		}
		b.ReportMetric(ms(times[0][2])/ms(times[1][2]), name+"-parallel/sequential")
		_ = e.Close()
	}
	for range b.N {
		run("demo", copyTree(b, "../../fixtures/demo"), []string{"demo-db", "demo-api", "demo-web"})
		suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1e6)
		var ns []string
		for i := range 6 {
			ns = append(ns, fmt.Sprintf("w%d-%s", i, suffix))
		}
		run("wide6", wideWorkspace(b, 6, suffix), ns)
	}
}
