package forward

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testport"
)

// Tests of what the README and the doc comments promise about a forward's options and
// edges: the replay of a connection's first bytes, the hold, the address, the backoff, the
// SPDY fallback, and statefulset targets.

// replayPod is a bare pod (no controller adopts or replaces it) with the echo port: %s is its
// name, %s its app label ("replay" puts it behind replayService).
const replayPod = `
apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels: {app: %s}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: echo
    image: example.invalid/echo:1
    ports:
    - {name: echo, containerPort: 7000}
`

const replayService = `
apiVersion: v1
kind: Service
metadata:
  name: replay
spec:
  selector: {app: replay}
  ports:
  - {name: tcp, port: 80, targetPort: echo}
`

// podRecorder is a Binder handler that counts the bytes each pod's server receives, and
// echoes them unless the pod is mute: a mute pod reads everything and never answers.
type podRecorder struct {
	mu   sync.Mutex
	mute map[string]bool
	got  map[string]int64
}

func (r *podRecorder) handle(pod string, c net.Conn) {
	r.mu.Lock()
	mute := r.mute[pod]
	r.mu.Unlock()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			r.mu.Lock()
			r.got[pod] += int64(n)
			r.mu.Unlock()
			if !mute {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (r *podRecorder) received(pod string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[pod]
}

func applyYAML(t *testing.T, tc *testcluster.Cluster, ns, doc string) {
	t.Helper()
	objs, err := testcluster.Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.Apply(testcluster.Context(t, 30*time.Second), ns, objs...); err != nil {
		t.Fatal(err)
	}
}

// TestReplayUpTo64KiB proves the replay promise at its limit. Two connections send to a pod
// that reads everything and never answers: one exactly 64 KiB, one 64 KiB + 1 byte. When that
// pod is deleted (another Ready by then), the first connection's bytes are replayed to the
// other pod and its whole echo comes back, as if nothing had happened; the second, past the
// limit, ends (EOF or reset, not a hang), reaches the other pod with none of its bytes, and
// is counted as cut.
func TestReplayUpTo64KiB(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, 2*time.Minute)
	ns := tc.Namespace(t, "fwd-replay")
	rec := &podRecorder{mute: map[string]bool{"mute": true}, got: map[string]int64{}}
	b := testcluster.StartBinder(t, tc, ns, "app=replay", rec.handle)
	applyYAML(t, tc, ns, replayService)
	applyYAML(t, tc, ns, fmt.Sprintf(replayPod, "mute", "replay"))
	if _, err := tc.WaitPods(ctx, ns, "app=replay", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitBound(ctx, "mute"); err != nil {
		t.Fatal(err)
	}
	f := startForward(t, tc, Spec{Namespace: ns, Target: "service/replay", Ports: []string{"0:tcp"}}, Options{})
	waitState(t, f, Connected, "connected to pod mute")

	const promised = 64 << 10 // the README's 64 KiB, not replayLimit: the test checks the constant
	fits := make([]byte, promised)
	over := make([]byte, promised+1)
	_, _ = rand.Read(fits)
	_, _ = rand.Read(over)
	send := func(payload []byte) net.Conn {
		c, err := net.DialTimeout("tcp", addr(f), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write(payload); err != nil {
			t.Fatal(err)
		}
		return c
	}
	cFits, cOver := send(fits), send(over)
	sent := int64(len(fits) + len(over))
	if err := testcluster.Poll(ctx, 20*time.Millisecond, func() (bool, error) { return rec.received("mute") == sent, nil }); err != nil {
		t.Fatalf("the mute pod received %d of %d bytes", rec.received("mute"), sent)
	}

	applyYAML(t, tc, ns, fmt.Sprintf(replayPod, "echo", "replay"))
	if _, err := tc.WaitPods(ctx, ns, "app=replay", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitBound(ctx, "echo"); err != nil {
		t.Fatal(err)
	}
	deletePod(t, tc, ns, "mute")

	_ = cFits.SetReadDeadline(time.Now().Add(30 * time.Second))
	got := make([]byte, len(fits))
	if n, err := io.ReadFull(cFits, got); err != nil {
		t.Fatalf("64 KiB connection: read %d of %d bytes of the echo: %v; events:\n%s", n, len(fits), err, events(f.Status()))
	}
	if !bytes.Equal(got, fits) {
		t.Fatal("64 KiB connection: the echo differs from what was sent")
	}

	_ = cOver.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := cOver.Read(make([]byte, 1))
	var nerr net.Error
	if n != 0 || err == nil || (errors.As(err, &nerr) && nerr.Timeout()) {
		t.Fatalf("64 KiB + 1 connection: read %d bytes, %v; want it ended (EOF or reset) with nothing", n, err)
	}
	if r := rec.received("echo"); r != int64(len(fits)) {
		t.Errorf("the second pod received %d bytes, want the %d of the 64 KiB connection only", r, len(fits))
	}
	if st := f.Status(); st.Cut != 1 || st.Failures != 0 || st.Replayed != 1 {
		t.Errorf("cut %d failures %d replayed %d, want 1 cut (the connection past 64 KiB), no failure, 1 replayed (the 64 KiB one); events:\n%s", st.Cut, st.Failures, st.Replayed, events(st))
	}
}

// TestHold proves the hold both ways. With Hold 1 s and no pod, a connection stays open for
// the hold (not refused), is then closed by the forward (EOF or reset, within generous
// slack) and counted as a failure. With the default Hold (30 s), a connection that arrives
// before any pod exists is served by the pod that comes up later.
func TestHold(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, 2*time.Minute)
	ns := tc.Namespace(t, "fwd-hold")
	b := testcluster.StartBinder(t, tc, ns, "app=replay", testcluster.Echo)
	applyYAML(t, tc, ns, replayService)

	const hold = time.Second
	short := startForward(t, tc, Spec{Namespace: ns, Target: "service/replay", Ports: []string{"0:tcp"}, Hold: hold}, Options{})
	long := startForward(t, tc, Spec{Namespace: ns, Target: "service/replay", Ports: []string{"0:tcp"}}, Options{})
	if long.spec.Hold != 30*time.Second {
		t.Errorf("default hold %s, want 30s", long.spec.Hold)
	}
	waitState(t, short, Listening, "no pod of service/replay exists")
	waitState(t, long, Listening, "no pod of service/replay exists")

	start := time.Now()
	c, err := net.DialTimeout("tcp", addr(short), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(hold + 10*time.Second))
	n, err := c.Read(make([]byte, 1))
	held := time.Since(start)
	var nerr net.Error
	if n != 0 || err == nil || (errors.As(err, &nerr) && nerr.Timeout()) {
		t.Fatalf("held connection: read %d bytes, %v after %s; want it closed after the hold", n, err, held)
	}
	if held < hold || held > hold+5*time.Second {
		t.Errorf("held connection closed after %s, want the hold of %s (+ up to 5 s)", held, hold)
	}
	if st := short.Status(); st.Failures != 1 || st.Total != 1 || st.BytesOut != 0 {
		t.Errorf("failures %d total %d bytes out %d, want 1 failure of 1 connection, nothing sent", st.Failures, st.Total, st.BytesOut)
	}

	// The default hold: the connection waits for the pod that comes.
	c2, err := net.DialTimeout("tcp", addr(long), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c2.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	applyYAML(t, tc, ns, fmt.Sprintf(replayPod, "late", "replay"))
	if _, err := b.WaitBound(ctx, "late"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c2, got); err != nil || string(got) != "held" {
		t.Fatalf("held connection with the default hold: %q, %v; events:\n%s", got, err, events(long.Status()))
	}
	if st := long.Status(); st.Failures != 0 {
		t.Errorf("%d failures with the default hold", st.Failures)
	}
}

// TestAddress proves Spec.Address: a forward on 127.0.0.2 serves there and holds nothing on
// 127.0.0.1 (a dial there is refused, and the same port on 127.0.0.1 is free to bind, which it
// would not be were the wildcard bound), its status names the address, and a second forward
// on the same address and port is refused with the address in the error.
func TestAddress(t *testing.T) {
	tc, _, ns := echoFixture(t)
	f := startForward(t, tc, Spec{Namespace: ns, Target: "service/echo", Ports: []string{"0:tcp"}, Address: "127.0.0.2"}, Options{})
	port := f.Ports()[0].Local
	there := net.JoinHostPort("127.0.0.2", strconv.Itoa(port))
	if err := echoOnce(there, []byte("on 127.0.0.2")); err != nil {
		t.Fatalf("through %s: %v", there, err)
	}
	if st := f.Status(); st.Address != "127.0.0.2" {
		t.Errorf("status address %q", st.Address)
	}
	if c, err := net.DialTimeout("tcp", addr(f), 5*time.Second); err == nil {
		c.Close()
		t.Errorf("%s accepted a connection: the forward listens beyond 127.0.0.2", addr(f))
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial %s: %v, want connection refused", addr(f), err)
	}
	ln, err := net.Listen("tcp", addr(f))
	if err != nil {
		t.Errorf("%s cannot be bound while the forward runs on 127.0.0.2: %v", addr(f), err)
	} else {
		ln.Close()
	}
	g, err := New(tc.Config, tc.Kube, Spec{Namespace: ns, Target: "service/echo", Ports: []string{strconv.Itoa(port) + ":tcp"}, Address: "127.0.0.2"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = g.Run(testcluster.Context(t, 30*time.Second))
	if want := fmt.Sprintf("local port %d on 127.0.0.2 is already in use", port); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("second forward on %s: %v, want %q", there, err, want)
	}
}

// apiProxy is an httputil.ReverseProxy in front of the test cluster's API server. A request
// that refuse answers with a status (not 0) gets that status and goes no further; the rest is
// proxied, upgrades included. It logs every portforward request and can cut every
// connection it holds.
type apiProxy struct {
	cfg  *rest.Config
	kube kubernetes.Interface

	mu     sync.Mutex
	refuse func(*http.Request) int
	log    []pfRequest
	conns  []net.Conn
}

// pfRequest is one request for a pod's portforward subresource, as the proxy saw it.
type pfRequest struct {
	at      time.Time
	upgrade string // websocket or SPDY/3.1
	status  int    // the proxy's refusal, or the API server's answer
}

func (r pfRequest) String() string {
	return fmt.Sprintf("%s %s: %d", r.at.Format("15:04:05.000"), r.upgrade, r.status)
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func isPortForward(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/portforward") }

func newAPIProxy(t *testing.T, tc *testcluster.Cluster, refuse func(*http.Request) int) *apiProxy {
	t.Helper()
	p := &apiProxy{refuse: refuse}
	rp := tc.ReverseProxy(t)
	rp.ModifyResponse = func(res *http.Response) error {
		if isPortForward(res.Request) {
			p.record(res.Request, res.StatusCode)
		}
		return nil
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		code := 0
		if p.refuse != nil {
			code = p.refuse(r)
		}
		p.mu.Unlock()
		if code != 0 {
			if isPortForward(r) {
				p.record(r, code)
			}
			http.Error(w, "refused by the test proxy", code)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	srv.Listener = &trackingListener{Listener: srv.Listener, p: p}
	srv.Start()
	t.Cleanup(func() { p.cut(); srv.Close() })
	p.cfg = &rest.Config{Host: srv.URL, QPS: 200, Burst: 400}
	var err error
	if p.kube, err = kubernetes.NewForConfig(p.cfg); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *apiProxy) record(r *http.Request, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, pfRequest{at: time.Now(), upgrade: r.Header.Get("Upgrade"), status: status})
}

// setRefuse changes what the proxy refuses from now on.
func (p *apiProxy) setRefuse(refuse func(*http.Request) int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = refuse
}

// requests returns the portforward requests seen so far.
func (p *apiProxy) requests() []pfRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]pfRequest(nil), p.log...)
}

// cut closes every connection the proxy has accepted, upgraded ones included.
func (p *apiProxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

type trackingListener struct {
	net.Listener
	p *apiProxy
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.p.mu.Lock()
		l.p.conns = append(l.p.conns, c)
		l.p.mu.Unlock()
	}
	return c, err
}

// refusePortForward refuses every portforward request, of either transport.
func refusePortForward(r *http.Request) int {
	if isPortForward(r) {
		return http.StatusForbidden
	}
	return 0
}

// backoffBound is the upper bound of the k-th delay (from 0) after consecutive failures:
// 50 ms doubling, at most 5 s. The delay itself is jittered over [bound/2, bound].
func backoffBound(k int) time.Duration {
	d := 50 * time.Millisecond
	for range k {
		d = min(d*2, 5*time.Second)
	}
	return d
}

// TestBackoffDelays proves the reconnect backoff, through Options.After, which sees each
// delay (and here ends it after 1 ms, so the test need not wait 5 s a time). While the
// API server refuses the pod's portforward, the k-th consecutive delay lies in
// [b/2, b] with b = 50 ms·2^k capped at 5 s, the capped delays are jittered (not all
// equal), and after a connection succeeds the delays start again from 50 ms.
func TestBackoffDelays(t *testing.T) {
	tc, _, ns := echoFixture(t)
	ctx := testcluster.Context(t, 2*time.Minute)
	p := newAPIProxy(t, tc, refusePortForward)
	var mu sync.Mutex
	var delays []time.Duration
	snapshot := func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), delays...)
	}
	after := func(d time.Duration) <-chan time.Time {
		mu.Lock()
		delays = append(delays, d)
		mu.Unlock()
		return time.After(time.Millisecond)
	}
	f := startForwardVia(t, p, Spec{Namespace: ns, Target: "service/echo", Ports: []string{"0:tcp"}}, Options{Transport: TransportWebSocket, After: after})
	const failures = 14 // 8 to reach the 5 s cap, then some at it
	if err := testcluster.Poll(ctx, 10*time.Millisecond, func() (bool, error) { return len(snapshot()) >= failures, nil }); err != nil {
		t.Fatalf("%d delays, want %d; events:\n%s", len(snapshot()), failures, events(f.Status()))
	}
	if st := f.Status(); st.State != Reconnecting || !strings.Contains(st.Reason, "cannot reach pod") {
		t.Errorf("while the portforward is refused: %s (%q), want reconnecting: cannot reach pod", st.State, st.Reason)
	}

	p.setRefuse(nil)
	waitState(t, f, Connected, "connected to pod")
	first := snapshot() // no delay follows a success
	checkBackoff(t, "before the success", first)
	capped := map[time.Duration]bool{}
	for _, d := range first[8:] {
		capped[d] = true
	}
	if len(capped) < 2 {
		t.Errorf("the %d delays at the cap are all %v: not jittered", len(first)-8, first[8:])
	}

	// Lose the connection while portforward is refused again: the delays start over.
	p.setRefuse(refusePortForward)
	p.cut()
	if err := testcluster.Poll(ctx, 10*time.Millisecond, func() (bool, error) { return len(snapshot()) >= len(first)+4, nil }); err != nil {
		t.Fatalf("no delays after the connection was lost; events:\n%s", events(f.Status()))
	}
	checkBackoff(t, "after the success", snapshot()[len(first):][:4])
}

// checkBackoff checks consecutive delays against backoffBound.
func checkBackoff(t *testing.T, when string, delays []time.Duration) {
	t.Helper()
	for k, d := range delays {
		if b := backoffBound(k); d < b/2 || d > b {
			t.Errorf("%s: delay %d is %v, want %v to %v (all: %v)", when, k, d, b/2, b, delays)
		}
	}
}

// startForwardVia starts a forward that reaches the API server through p.
func startForwardVia(t *testing.T, p *apiProxy, spec Spec, opts Options) *Forward {
	t.Helper()
	return startForwardWith(t, p.cfg, p.kube, spec, opts)
}

// TestBackoffWaitsInRealTime proves the default wait (Options.After unset) really waits: the
// first six attempts the proxy sees while it refuses are spaced by at least the backoff's
// lower bound (b/2; not checked for the first gap, which a watch event may cut short) and at
// most its bound plus a generous second.
func TestBackoffWaitsInRealTime(t *testing.T) {
	tc, _, ns := echoFixture(t)
	ctx := testcluster.Context(t, time.Minute)
	p := newAPIProxy(t, tc, refusePortForward)
	f := startForwardVia(t, p, Spec{Namespace: ns, Target: "service/echo", Ports: []string{"0:tcp"}}, Options{Transport: TransportWebSocket})
	const attempts = 6 // 50+100+200+400+800 ms of backoff at most
	if err := testcluster.Poll(ctx, 10*time.Millisecond, func() (bool, error) { return len(p.requests()) >= attempts, nil }); err != nil {
		t.Fatalf("%d attempts, want %d; events:\n%s", len(p.requests()), attempts, events(f.Status()))
	}
	reqs := p.requests()
	for k := range attempts - 1 {
		// The first gap may be cut short by the watch reporting the pod after the first
		// attempt already saw it (a wake, as promised); from there on nothing wakes it early.
		gap := reqs[k+1].at.Sub(reqs[k].at)
		if b := backoffBound(k); (k > 0 && gap < b/2) || gap > b+time.Second {
			t.Errorf("attempts %d and %d are %v apart, want %v to %v", k, k+1, gap, b/2, b+time.Second)
		}
	}
}

// TestSPDYFallback proves TransportAuto: through a proxy that answers the WebSocket upgrade of
// portforward with 400 or 403 (what client-go counts as an upgrade failure: any answer but
// 101), the forward falls back to SPDY and carries traffic, and dials the next pod over SPDY
// without asking for WebSocket again; TransportWebSocket through the same proxy cannot
// connect (so the refusal is real); and with nothing refused, auto uses WebSocket and never
// SPDY.
func TestSPDYFallback(t *testing.T) {
	tc, _, ns := echoFixture(t)
	spec := Spec{Namespace: ns, Target: "service/echo", Ports: []string{"0:tcp"}, Hold: 10 * time.Second}
	for _, code := range []int{http.StatusBadRequest, http.StatusForbidden} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			p := newAPIProxy(t, tc, func(r *http.Request) int {
				if isPortForward(r) && isWebSocket(r) {
					return code
				}
				return 0
			})
			ws := startForwardVia(t, p, spec, Options{Transport: TransportWebSocket})
			st := waitState(t, ws, Reconnecting, "cannot reach pod")
			if !strings.Contains(st.Reason, strconv.Itoa(code)) {
				t.Errorf("websocket only: reason %q does not name the status %d", st.Reason, code)
			}

			f := startForwardVia(t, p, spec, Options{})
			if err := echoOnce(addr(f), []byte("over SPDY")); err != nil {
				t.Fatalf("auto through a proxy that refuses websocket: %v; portforward requests %+v; events:\n%s", err, p.requests(), events(f.Status()))
			}
			waitState(t, f, Connected, "connected to pod")
			var refused, spdy int
			for _, r := range p.requests() {
				switch {
				case strings.EqualFold(r.upgrade, "websocket") && r.status == code:
					refused++
				case strings.EqualFold(r.upgrade, "websocket"):
					t.Errorf("a websocket upgrade got %d", r.status)
				case strings.HasPrefix(r.upgrade, "SPDY") && r.status == http.StatusSwitchingProtocols:
					spdy++
				}
			}
			if refused == 0 || spdy != 1 {
				t.Errorf("%d refused websocket upgrades and %d SPDY upgrades, want some and 1", refused, spdy)
			}

			// Once refused, the forward does not ask again: the next pod is dialled over
			// SPDY straight away. (The WebSocket-only forward, which keeps asking, stops.)
			ws.Stop()
			waitState(t, ws, Stopped, "stopped")
			seen := len(p.requests())
			old := f.Status().Pod
			deletePod(t, tc, ns, old)
			if err := testcluster.Poll(testcluster.Context(t, 30*time.Second), 10*time.Millisecond, func() (bool, error) {
				st := f.Status()
				return st.State == Connected && st.Pod != old, nil
			}); err != nil {
				t.Fatalf("never connected to the pod replacing %s; events:\n%s", old, events(f.Status()))
			}
			after := p.requests()[seen:]
			if len(after) == 0 {
				t.Fatal("no dial through the proxy after the pod was replaced")
			}
			for _, r := range after {
				if !strings.HasPrefix(r.upgrade, "SPDY") {
					t.Errorf("after the fallback, a %s upgrade (%d); want SPDY only: %v", r.upgrade, r.status, after)
				}
			}
		})
	}
	t.Run("accepted", func(t *testing.T) {
		p := newAPIProxy(t, tc, nil)
		f := startForwardVia(t, p, spec, Options{})
		if err := echoOnce(addr(f), []byte("over websocket")); err != nil {
			t.Fatal(err)
		}
		reqs := p.requests()
		if len(reqs) != 1 || !strings.EqualFold(reqs[0].upgrade, "websocket") || reqs[0].status != http.StatusSwitchingProtocols {
			t.Errorf("portforward requests %+v, want one websocket upgrade, answered 101", reqs)
		}
	})
}

const echoStatefulSet = `
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: echo
spec:
  serviceName: echo
  replicas: 1
  selector:
    matchLabels: {app: echo-sts}
  template:
    metadata:
      labels: {app: echo-sts}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: echo
        image: example.invalid/echo:1
        ports:
        - {name: echo, containerPort: 7000}
`

// TestStatefulSetTarget proves a statefulset target: sts/echo (kubectl's short name) forwards
// a named container port to the set's pod echo-0, and when echo-0 is deleted and the set
// creates a new pod of the same name, the next connection reaches the new pod's server.
func TestStatefulSetTarget(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, 2*time.Minute)
	ns := tc.Namespace(t, "fwd-sts")
	b := testcluster.StartBinder(t, tc, ns, "app=echo-sts", testcluster.Echo)
	applyYAML(t, tc, ns, echoStatefulSet)
	if _, err := tc.WaitPods(ctx, ns, "app=echo-sts", 1); err != nil {
		t.Fatal(err)
	}
	first, err := b.WaitBound(ctx, "echo-0")
	if err != nil {
		t.Fatal(err)
	}
	f := startForward(t, tc, Spec{Namespace: ns, Target: "sts/echo", Ports: []string{"0:echo"}}, Options{})
	if err := echoOnce(addr(f), []byte("to echo-0")); err != nil {
		t.Fatal(err)
	}
	st := f.Status()
	if st.Target != "statefulset/echo" || st.Pod != "echo-0" || st.Ports[0].Resolved != 7000 {
		t.Errorf("target %s pod %s resolved %d, want statefulset/echo to echo-0:7000", st.Target, st.Pod, st.Ports[0].Resolved)
	}
	if first.Accepted() != 1 {
		t.Errorf("echo-0's server accepted %d connections, want 1", first.Accepted())
	}

	deletePod(t, tc, ns, "echo-0")
	if err := echoOnce(addr(f), []byte("to the new echo-0")); err != nil {
		t.Fatalf("after echo-0 was replaced: %v; events:\n%s", err, events(f.Status()))
	}
	second, err := b.WaitBound(ctx, "echo-0")
	if err != nil {
		t.Fatal(err)
	}
	if second.UID == first.UID || second.Accepted() != 1 {
		t.Errorf("the new echo-0 (uid %s, old %s) accepted %d connections, want 1", second.UID, first.UID, second.Accepted())
	}
	if st := f.Status(); st.Failures != 0 {
		t.Errorf("%d failures; events:\n%s", st.Failures, events(st))
	}
}

// TestJustReadyPodMayRefuseAtFirst: a pod that has just become Ready whose program does not
// listen yet (no readiness probe: Ready once its containers start) refuses the first
// connections; within the start grace (3 s) a connection it refused before any answer is tried
// again until the port answers, so the client sees one slow connection, not a failure, and
// the forward never reports failed.
func TestJustReadyPodMayRefuseAtFirst(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, time.Minute)
	ns := tc.Namespace(t, "fwd-grace")
	applyEcho(t, tc, ns)
	pods, err := tc.WaitPods(ctx, ns, "app=echo", 1)
	if err != nil {
		t.Fatal(err)
	}
	port := testport.Reserve(t) // the pod's port: refuses until the program listens on it
	if err := tc.Apply(ctx, ns, testcluster.PortForwardFor(&pods[0], &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port.Number})); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var waits []time.Duration // every wait the forward asked for: backoffs and grace retries
	after := func(d time.Duration) <-chan time.Time {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return time.After(d)
	}
	f := startForward(t, tc, Spec{Namespace: ns, Target: "deployment/echo", Ports: []string{"0:7000"}}, Options{After: after})
	waitState(t, f, Connected, "connected to pod "+pods[0].Name)
	result := make(chan error, 1)
	start := time.Now()
	go func() { result <- echoOnce(addr(f), []byte("early")) }()
	time.Sleep(800 * time.Millisecond) // the program starts listening a moment later
	ln, err := net.Listen("tcp", port.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serveEcho(ln)
	if err := <-result; err != nil {
		t.Fatalf("the connection made while the pod's port still refused: %v; events:\n%s", err, events(f.Status()))
	}
	took := time.Since(start)
	st := f.Status()
	if st.Failures != 0 || st.State != Connected {
		t.Errorf("after the port came up: %s with %d failures; events:\n%s", st.State, st.Failures, events(st))
	}
	mu.Lock()
	retries := 0 // the grace waits the forward asked for
	for _, d := range waits {
		if d == graceRetry {
			retries++
		}
	}
	mu.Unlock()
	if st.Retried == 0 || st.Retried != int64(retries) || st.Replayed != 0 {
		t.Errorf("retried %d (grace waits %d), replayed %d; want every grace wait counted as a retry, and no replay", st.Retried, retries, st.Replayed)
	}
	for _, e := range st.Events {
		if e.State == Failed {
			t.Errorf("reported failed during the start grace: %s", e)
		}
	}
	if took < 800*time.Millisecond {
		t.Errorf("the echo came back after %s, before the port listened", took)
	}
	// 800 ms of refusals at one try per 50 ms; each try also waits for kwok's answer.
	if graceRetry != 50*time.Millisecond || retries < 4 {
		t.Errorf("%d retries %s apart while the port refused for 800 ms, want several 50 ms apart (the README's figure)", retries, graceRetry)
	}
}
