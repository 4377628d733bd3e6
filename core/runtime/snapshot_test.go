package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/internal/benchkit"
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
// not running again after down. (That this comes from watches, not polling, is
// TestWatchingEngineDoesNotPoll's to show: this test would pass with a poller.)
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

// arrivals stamps, on the engine's own connection to the API server, when the objects it
// watches reach it: the body of every list and watch of deployments and configmaps is read
// through a reader that stamps each chunk as client-go reads it, and a goroutine decodes the
// chunks (JSON: the engine's member informers are dynamic) to keep, per object, when its
// first version that kstatus calls Current arrived. The snapshot can only show an instance
// healthy after that version has arrived, so a delay measured from it is never negative:
// both stamps come from the engine's side of the same event.
type arrivals struct {
	mu      sync.Mutex
	current map[string]time.Time // "kind namespace/name" → arrival of its first Current version
	errs    []error              // what could not be decoded
}

// chunk is what one Read of a response body returned, and when.
type chunk struct {
	at   time.Time
	data []byte
}

// wrap is a rest.Config's WrapTransport: it stamps the bodies of lists and watches of the
// kinds BenchmarkSnapshotDelay's app has.
func (a *arrivals) wrap(rt http.RoundTripper) http.RoundTripper {
	return &stampingTransport{rt: rt, arrivals: a}
}

// stampingTransport is the round tripper arrivals.wrap returns.
type stampingTransport struct {
	rt       http.RoundTripper
	arrivals *arrivals
}

// WrappedRoundTripper lets client-go reach the transport beneath (to close its idle
// connections).
func (t *stampingTransport) WrappedRoundTripper() http.RoundTripper { return t.rt }

func (t *stampingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		return resp, err
	}
	var gvk schema.GroupVersionKind
	switch p := req.URL.Path; {
	case strings.HasSuffix(p, "/apis/apps/v1/deployments"):
		gvk = appsv1.SchemeGroupVersion.WithKind("Deployment")
	case strings.HasSuffix(p, "/api/v1/configmaps"):
		gvk = corev1.SchemeGroupVersion.WithKind("ConfigMap")
	default:
		return resp, nil
	}
	body := &stampedBody{ReadCloser: resp.Body, chunks: make(chan chunk, 4096)}
	go t.arrivals.decode(gvk, body.chunks)
	resp.Body = body
	return resp, nil
}

// decode reads a body's chunks until it ends and records the Current versions of kind gvk
// it carries. A watch is a stream of JSON events, each ended by a newline; a list is one
// JSON object (whose items carry no kind).
func (a *arrivals) decode(gvk schema.GroupVersionKind, chunks <-chan chunk) {
	var buf []byte
	var last time.Time
	take := func(doc []byte, at time.Time) {
		var v struct {
			Type   string            `json:"type"`
			Object json.RawMessage   `json:"object"`
			Items  []json.RawMessage `json:"items"`
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			return
		}
		if err := json.Unmarshal(doc, &v); err != nil {
			a.mu.Lock()
			a.errs = append(a.errs, fmt.Errorf("decode %.200s: %w", doc, err))
			a.mu.Unlock()
			return
		}
		objs := v.Items
		if v.Object != nil && v.Type != "DELETED" {
			objs = append(objs, v.Object)
		}
		for _, raw := range objs {
			var o unstructured.Unstructured
			if err := o.UnmarshalJSON(raw); err != nil {
				continue // a bookmark or a status: no object of the kind
			}
			o.SetGroupVersionKind(gvk)
			if !kube.HealthOf(&o).Healthy() {
				continue
			}
			key := gvk.Kind + " " + o.GetNamespace() + "/" + o.GetName()
			a.mu.Lock()
			if _, ok := a.current[key]; !ok {
				a.current[key] = at
			}
			a.mu.Unlock()
		}
	}
	for c := range chunks {
		buf, last = append(buf, c.data...), c.at
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			take(buf[:i], c.at)
			buf = buf[i+1:]
		}
	}
	take(buf, last) // a list's body may end without a newline
}

// readyAt returns when the last of the objects named (kind, name) in namespace ns reached
// the engine in a Current version, waiting up to timeout for the decoding goroutines to
// catch up (their stamps were taken as the bytes were read); false if one never did.
func (a *arrivals) readyAt(timeout time.Duration, ns string, objects ...[2]string) (time.Time, bool) {
	for deadline := time.Now().Add(timeout); ; time.Sleep(5 * time.Millisecond) {
		a.mu.Lock()
		var latest time.Time
		all := true
		for _, o := range objects {
			at, ok := a.current[o[0]+" "+ns+"/"+o[1]]
			all = all && ok
			if at.After(latest) {
				latest = at
			}
		}
		a.mu.Unlock()
		if all {
			return latest, true
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
	}
}

// stampedBody passes a response body through, handing each chunk read, with its time, to
// a decoding goroutine (a copy: the reader reuses its buffer); the first error or Close
// ends the chunks.
type stampedBody struct {
	io.ReadCloser
	mu     sync.Mutex
	closed bool
	chunks chan chunk
}

func (s *stampedBody) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	at := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > 0 && !s.closed {
		s.chunks <- chunk{at: at, data: bytes.Clone(p[:n])}
	}
	if err != nil {
		s.end()
	}
	return n, err
}

func (s *stampedBody) Close() error {
	err := s.ReadCloser.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.end()
	return err
}

// end closes the chunks once; s.mu is held.
func (s *stampedBody) end() {
	if !s.closed {
		s.closed = true
		close(s.chunks)
	}
}

// snapshotSamples is how many samples BenchmarkSnapshotDelay takes in one iteration, and
// snapshotIdle how long the engine is left idle before each: the last sample's down has
// been seen, nothing is in flight. 7 × (idle + sample) outlasts go test's default
// -benchtime of 1 s, so ci/bench runs one iteration: the 7 samples the README states.
const (
	snapshotSamples = 7
	snapshotIdle    = 250 * time.Millisecond
)

// BenchmarkSnapshotDelay measures the delay from a Deployment's turning Available reaching
// the engine to the engine's snapshot showing its instance healthy (target: under 500 ms):
// the start is stamped on the engine's own connection to the API server (arrivals), when
// the last of the app's objects (the Deployment, last in practice, and the ConfigMap) arrives
// in the version kstatus calls Current; the end when a subscriber sees the snapshot. It
// takes snapshotSamples samples per iteration, each bringing the app up in a fresh namespace
// after snapshotIdle, with one engine for the whole run as the window keeps one (the first
// sample includes starting its watch of Deployments). It reports the delays' min, median and max in ms, the samples, and
// the count of negative delays, and fails when there is one.
func BenchmarkSnapshotDelay(b *testing.B) {
	tc := testcluster.Get(b)
	ctx := context.Background()
	seen := &arrivals{current: map[string]time.Time{}}
	// The engine's connection, as KubeConnector makes it, with its bodies stamped.
	connect := func(ctx context.Context, _, _ string) (Cluster, error) {
		cfg := rest.CopyConfig(tc.Config)
		cfg.QPS, cfg.Burst = 100, 200
		cfg.UserAgent = "roro"
		cfg.Wrap(seen.wrap)
		c, err := kube.NewCluster(cfg, kube.DefaultTimeout)
		if err != nil {
			return nil, err
		}
		if err := c.Ping(ctx); err != nil {
			c.Close()
			return nil, err
		}
		return NewCluster(c, time.Now), nil
	}
	var delays []time.Duration
	negative := 0
	// One engine for the whole run, as the window keeps one: each sample reloads the
	// workspace with the app in a new namespace.
	dir := oneApp(b, "roro-snap-bench-warmup")
	ws, err := workspace.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	rt := kubeEngine(b, tc, ws, func(o *Options) { o.Watch, o.Connect = true, connect })
	waitFor(b, rt, 30*time.Second, func(s *Snapshot) bool {
		return len(s.Connections) == 1 && s.Connections[0].State == Connected && s.Connections[0].Synced
	})
	b.ResetTimer()
	for range b.N {
		for range snapshotSamples {
			time.Sleep(snapshotIdle)
			ns := testcluster.UniqueName("roro-snap-bench")
			testfs.Write(b, dir, map[string]string{"apps/one/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"]}`})
			ws, err := workspace.Load(dir)
			if err != nil {
				b.Fatal(err)
			}
			if err := rt.Reload(ws); err != nil {
				b.Fatal(err)
			}
			if err := runUp(ctx, rt, UpRequest{NoWait: true}); err != nil {
				b.Fatal(err)
			}
			waitFor(b, rt, 30*time.Second, func(s *Snapshot) bool {
				iv := instanceOf(s, "one", "default")
				return iv != nil && iv.Namespace == ns && iv.Health == Healthy
			})
			shown := time.Now()
			at, ok := seen.readyAt(5*time.Second, ns, [2]string{"Deployment", "one"}, [2]string{"ConfigMap", "one"})
			if !ok {
				seen.mu.Lock()
				errs := seen.errs
				seen.mu.Unlock()
				b.Fatalf("the snapshot shows %s healthy, but no Current version of its objects was seen on the engine's connection (decode errors: %v)", ns, errs)
			}
			d := shown.Sub(at)
			if d < 0 {
				negative++
				b.Logf("negative delay: %s in %s", d, ns)
			}
			delays = append(delays, d)
			if _, err := runDown(ctx, rt, DownRequest{}); err != nil {
				b.Fatal(err)
			}
			waitFor(b, rt, 30*time.Second, func(s *Snapshot) bool {
				iv := instanceOf(s, "one", "default")
				return iv != nil && !iv.Running
			})
		}
	}
	b.StopTimer()
	b.Logf("delays in ms: %v", benchkit.Ms(delays))
	benchkit.Report(b, "delay-ms", benchkit.Ms(delays))
	b.ReportMetric(float64(len(delays)), "samples")
	b.ReportMetric(float64(negative), "negative")
	if negative > 0 {
		b.Fatalf("%d of %d delays are negative: the start is not stamped before the snapshot", negative, len(delays))
	}
}
