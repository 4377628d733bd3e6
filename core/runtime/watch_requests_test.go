package runtime

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/internal/testcluster"
)

// TestWatchingEngineDoesNotPoll: with watches on, the engine learns of instances and their
// health from watches, not by polling. An engine with watches (the window's) talks to the
// API server through a proxy that records every request; a second engine, on its own
// connection, brings an app up and down, and the watching engine's snapshot follows it
// (healthy, then not running). Between the two, the app is left alone for pingWindow pings
// of the watching engine (PingEvery is short here, so a poll tied to the engine's clock would
// come many times).
//
// The bound, from the code: after a watch is started, client-go's reflector keeps it for
// 5 to 10 minutes (minWatchTimeout) and then watches again from the last resource version,
// without a list; it lists again only when a watch failed. The Watcher starts an informer
// once per kind (never stops one before it ends), and asks discovery only for a kind an
// ApplySet parent names that it does not watch yet. So over the whole test, which lasts
// far less than 5 minutes, every request of the watching engine must be one of:
//   - a GET /readyz ping, once per PingEvery;
//   - discovery (GET /api, /apis and their group versions), asked when a parent names a kind;
//   - a read of a path (a list, its pages, or a watch that begins with the current objects:
//     sendInitialEvents, as client-go's informers list now) that was never read before,
//     whose last read failed (a retry: another test deleted a CRD whose kind is watched),
//     or one of whose watches the server has ended since its last read (a re-list after a
//     failed watch);
//   - a watch of a path whose previous watch, if any, failed or was ended by the server.
//
// No write, no second read of a path whose watch runs on, and no watch started again after
// the engine itself ended the previous one: a poller, at any interval shorter than the test,
// reads the same path again, or restarts its informers, and fails. Other tests' instances in the
// cluster may make the engine watch new kinds, which is allowed by the same rules. The test
// also checks it saw the watches of the app's parent Secret, Deployment and ConfigMap, so it
// does not pass by seeing nothing.
func TestWatchingEngineDoesNotPoll(t *testing.T) {
	const pingEvery, pingWindow = 300 * time.Millisecond, 10
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-no-poll")
	dir := oneApp(t, ns)
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := startRecordingProxy(t, tc)
	watcher := kubeEngine(t, tc, ws, func(o *Options) {
		o.Watch, o.PingEvery = true, pingEvery
		o.Connect = KubeConnector(rec.kubeconfig, "", kube.DefaultTimeout, time.Now, nil)
	})
	operator := kubeEngine(t, tc, ws) // its requests do not go through the proxy
	t.Cleanup(func() { _, _ = runDown(context.Background(), operator, DownRequest{}) })
	waitFor(t, watcher, 30*time.Second, func(s *Snapshot) bool {
		return len(s.Connections) == 1 && s.Connections[0].State == Connected && s.Connections[0].Synced
	})
	ctx := testcluster.Context(t, time.Minute)
	if err := runUp(ctx, operator, UpRequest{NoWait: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, watcher, 30*time.Second, func(s *Snapshot) bool {
		iv := instanceOf(s, "one", "default")
		return iv != nil && iv.Running && iv.Health == Healthy && len(iv.Objects) == 2
	})
	// The idle window: pingWindow pings of the watching engine, the app left alone.
	idleFrom := rec.count()
	start := time.Now()
	if err := testcluster.Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		return rec.pingsSince(idleFrom) >= pingWindow, nil
	}); err != nil {
		t.Fatalf("the watching engine did not ping %d times in a row: %v", pingWindow, err)
	}
	idle := time.Since(start)
	if _, err := runDown(ctx, operator, DownRequest{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, watcher, 30*time.Second, func(s *Snapshot) bool {
		iv := instanceOf(s, "one", "default")
		return iv != nil && !iv.Running
	})
	reqs := rec.all()
	if len(reqs) == 0 {
		t.Fatal("the proxy saw no request of the watching engine")
	}
	if pings, most := rec.pingsSince(0), int(time.Since(reqs[0].at)/pingEvery)+2; pings > most {
		t.Errorf("%d pings in %s, more than one per %s", pings, time.Since(reqs[0].at).Round(time.Millisecond), pingEvery)
	}
	if problems := checkRequests(reqs); len(problems) > 0 {
		t.Errorf("%s\nthe watching engine's requests:\n%s", strings.Join(problems, "\n"), describe(reqs))
	}
	watched := map[string]bool{}
	others := 0
	for i, r := range reqs {
		if r.watch {
			watched[r.resource()] = true
		}
		if i >= idleFrom && !r.ping() {
			others++
		}
	}
	for _, res := range []string{"secrets", "deployments", "configmaps"} {
		if !watched[res] {
			t.Errorf("no watch of %s was seen on the watching engine's connection: the proxy does not see its requests\n%s", res, describe(reqs))
		}
	}
	t.Logf("%d requests in all; in the idle window of %s: %d pings and %d other requests (watches, and first reads of kinds other tests' instances brought)",
		len(reqs), idle.Round(time.Millisecond), rec.pingsSince(idleFrom), others)
}

// recordingProxy is a plain-HTTP reverse proxy to the test cluster's API server that
// records every request, for an engine whose kubeconfig points at it.
type recordingProxy struct {
	kubeconfig string
	mu         sync.Mutex
	reqs       []*request
}

// request is one request the proxy relayed.
type request struct {
	method, path string
	query        url.Values
	watch        bool
	at           time.Time
	// ended is when its response was finished (zero while it runs: a watch); clientGone
	// says the client ended it (cancelled it, closed the connection), not the server.
	ended      time.Time
	clientGone bool
	// status is the response's status code (0 until the response begins).
	status int
}

// failed reports whether the server refused r or did not answer it.
func (r *request) failed() bool { return r.status >= 300 || (r.status == 0 && !r.ended.IsZero()) }

// statusWriter keeps the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	p *recordingProxy
	r *request
}

func (w *statusWriter) WriteHeader(code int) {
	w.p.mu.Lock()
	w.r.status = code
	w.p.mu.Unlock()
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets the proxy flush each watch event through (http.ResponseController).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (r *request) ping() bool { return r.method == http.MethodGet && r.path == "/readyz" }

// discovery reports whether r asks which groups, versions and resources the server has.
func (r *request) discovery() bool {
	parts := strings.Split(strings.Trim(r.path, "/"), "/")
	return r.method == http.MethodGet && ((parts[0] == "api" && len(parts) <= 2) || (parts[0] == "apis" && len(parts) <= 3))
}

// resource is the last element of r's path: for a list or a watch, the resource's plural.
func (r *request) resource() string { return r.path[strings.LastIndex(r.path, "/")+1:] }

func (r *request) String() string {
	s := fmt.Sprintf("%s %s %s", r.at.Format("15:04:05.000"), r.method, r.path)
	if q := r.query.Encode(); q != "" {
		s += "?" + q
	}
	return s
}

// startRecordingProxy starts the proxy and writes a kubeconfig for it; both end with the test
// (after the engines, which are started later and so closed first).
func startRecordingProxy(t *testing.T, tc *testcluster.Cluster) *recordingProxy {
	t.Helper()
	p := &recordingProxy{}
	proxy := tc.ReverseProxy(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		r := &request{method: req.Method, path: req.URL.Path, query: q, at: time.Now(),
			watch: q.Get("watch") == "true" || q.Get("watch") == "1"}
		p.mu.Lock()
		p.reqs = append(p.reqs, r)
		p.mu.Unlock()
		proxy.ServeHTTP(&statusWriter{ResponseWriter: w, p: p, r: r}, req)
		p.mu.Lock()
		r.ended, r.clientGone = time.Now(), req.Context().Err() != nil
		p.mu.Unlock()
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	p.kubeconfig = testcluster.Kubeconfig(t, "proxy", srv.URL, false)
	return p
}

// count is how many requests the proxy has seen.
func (p *recordingProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.reqs)
}

// pingsSince counts the pings among the requests from the i-th on.
func (p *recordingProxy) pingsSince(i int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.reqs[i:] {
		if r.ping() {
			n++
		}
	}
	return n
}

// all returns a copy of the requests so far, each copied, in the order they arrived.
func (p *recordingProxy) all() []request {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]request, len(p.reqs))
	for i, r := range p.reqs {
		out[i] = *r
	}
	return out
}

// checkRequests returns a problem for every request outside the bound
// TestWatchingEngineDoesNotPoll states: a write; a read of a path (a list, or a watch that
// starts with the current objects: sendInitialEvents) read before, unless that read failed or
// one of its watches has been ended by the server since; a watch of a path that starts again
// while its previous watch runs, or after the engine itself ended it.
func checkRequests(reqs []request) []string {
	var problems []string
	lastRead := map[string]*request{}
	lastWatch := map[string]*request{}
	fail := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	for i := range reqs {
		r := &reqs[i]
		switch {
		case r.ping(), r.discovery():
			continue
		case r.method != http.MethodGet:
			fail("the watching engine wrote: %s", r)
			continue
		case r.query.Get("continue") != "":
			continue // the next page of a list
		}
		if r.watch {
			if w := lastWatch[r.path]; w != nil && !w.failed() && (w.ended.IsZero() || w.clientGone) {
				fail("the watching engine watched %s again after its watch of %s was ended by the engine, or while it ran: a restarted informer", r, w.at.Format("15:04:05.000"))
			}
			lastWatch[r.path] = r
		}
		if r.watch && r.query.Get("sendInitialEvents") != "true" {
			continue // a watch from the last resource version it saw: no read
		}
		prev := lastRead[r.path]
		lastRead[r.path] = r
		if prev == nil {
			continue
		}
		if prev.failed() {
			continue // a retry
		}
		ended := false
		for _, w := range reqs[:i] {
			ended = ended || (w.watch && w.path == r.path && !w.clientGone && w.ended.After(prev.at))
		}
		if !ended {
			fail("the watching engine read %s again (last at %s), and no watch of it had ended since: polling", r, prev.at.Format("15:04:05.000"))
		}
	}
	return problems
}

// describe lists requests, one a line, pings left out.
func describe(reqs []request) string {
	var b strings.Builder
	pings := 0
	for _, r := range reqs {
		if r.ping() {
			pings++
			continue
		}
		fmt.Fprintf(&b, "  %s\n", &r)
	}
	fmt.Fprintf(&b, "  and %d pings\n", pings)
	return b.String()
}
