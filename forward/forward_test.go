package forward

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testport"
)

const echoApp = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
spec:
  replicas: 1
  selector:
    matchLabels: {app: echo}
  template:
    metadata:
      labels: {app: echo}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: echo
        image: example.invalid/echo:1
        ports:
        - {name: echo, containerPort: 7000}
---
apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  selector: {app: echo}
  ports:
  - {name: tcp, port: 80, targetPort: echo}
`

// applyEcho applies the echo app (Deployment and Service) to ns and returns its objects.
func applyEcho(t testing.TB, tc *testcluster.Cluster, ns string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := testcluster.Decode([]byte(echoApp))
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.Apply(testcluster.Context(t, time.Minute), ns, objs...); err != nil {
		t.Fatal(err)
	}
	return objs
}

// echoFixture deploys the echo app in a fresh namespace with the per-pod binder.
func echoFixture(t testing.TB) (*testcluster.Cluster, *testcluster.Binder, string) {
	t.Helper()
	return echoFixtureWith(t, testcluster.Echo)
}

// echoFixtureWith is echoFixture with the pods' servers running h.
func echoFixtureWith(t testing.TB, h testcluster.Handler) (*testcluster.Cluster, *testcluster.Binder, string) {
	t.Helper()
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, time.Minute)
	ns := tc.Namespace(t, "fwd")
	b := testcluster.StartBinder(t, tc, ns, "app=echo", h)
	applyEcho(t, tc, ns)
	pods, err := tc.WaitPods(ctx, ns, "app=echo", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitBound(ctx, pods[0].Name); err != nil {
		t.Fatal(err)
	}
	return tc, b, ns
}

// startForward runs a forward until the test ends and returns it once Ready.
func startForward(t *testing.T, tc *testcluster.Cluster, spec Spec, opts Options) *Forward {
	t.Helper()
	return startForwardWith(t, tc.Config, tc.Kube, spec, opts)
}

// startForwardWith is startForward with the API server's config and client given.
func startForwardWith(t *testing.T, cfg *rest.Config, kube kubernetes.Interface, spec Spec, opts Options) *Forward {
	t.Helper()
	f, err := New(cfg, kube, spec, opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Run(context.Background()) }()
	t.Cleanup(func() {
		f.Stop()
		f.Stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if f.Status().State != Stopped {
			t.Errorf("state after Stop: %s", f.Status().State)
		}
	})
	select {
	case <-f.Ready():
	case err := <-done:
		t.Fatalf("forward ended before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("forward not ready after 30 s")
	}
	return f
}

func addr(f *Forward) string { return "127.0.0.1:" + strconv.Itoa(f.Ports()[0].Local) }

// echoOnce sends payload through addr and reads the echo back, byte for byte. It reads as
// many bytes as it sent rather than to EOF: kwok's tunnel does not pass a half-close on to the
// pod's server, so the echo never sees the end of its input.
func echoOnce(addr string, payload []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		werr <- err
	}()
	got := make([]byte, len(payload))
	n, err := io.ReadFull(c, got)
	if err != nil {
		return fmt.Errorf("read %d of %d bytes: %w", n, len(payload), err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("the echo of %d bytes differs from what was sent", len(payload))
	}
	return nil
}

// assertBound checks the local port is still held by the forward: a second bind fails.
func assertBound(t *testing.T, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err == nil {
		ln.Close()
		t.Fatalf("local port %d was free: the forward let go of it", port)
	}
}

func TestForward64MiBOverEachTransport(t *testing.T) {
	tc, b, ns := echoFixture(t)
	payload := make([]byte, 64<<20)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []string{TransportWebSocket, TransportSPDY} {
		t.Run(tr, func(t *testing.T) {
			f := startForward(t, tc, Spec{Namespace: ns, Target: "service/echo", Ports: []string{"0:tcp"}}, Options{Transport: tr})
			before := acceptedAll(b)
			if err := echoOnce(addr(f), payload); err != nil {
				t.Fatal(err)
			}
			st := f.Status()
			if st.State != Connected || st.BytesIn != int64(len(payload)) || st.BytesOut != int64(len(payload)) || st.Total != 1 {
				t.Errorf("status %+v", st)
			}
			if st.Ports[0].Resolved != 7000 {
				t.Errorf("resolved port %d", st.Ports[0].Resolved)
			}
			if acceptedAll(b)-before != 1 {
				t.Errorf("the pod's server saw %d connections, want 1", acceptedAll(b)-before)
			}
		})
	}
}

func acceptedAll(b *testcluster.Binder) int64 {
	var n int64
	for _, s := range b.Servers() {
		n += s.Accepted()
	}
	return n
}

// TestForwardSurvivesPodChurn: a pod deleted while idle, one deleted mid-stream, and a rollout
// to a new ReplicaSet. The next connection works each time with no action, the in-flight one
// ends (EOF or reset, never a hang), and the local port stays bound at every check.
func TestForwardSurvivesPodChurn(t *testing.T) {
	tc, b, ns := echoFixture(t)
	ctx := testcluster.Context(t, 2*time.Minute)
	f := startForward(t, tc, Spec{Namespace: ns, Target: "deployment/echo", Ports: []string{"0:echo"}}, Options{})
	port := f.Ports()[0].Local
	small := []byte("hello through the forward")
	if err := echoOnce(addr(f), small); err != nil {
		t.Fatal(err)
	}
	podOf := func() string { return f.Status().Pod }

	// 1. Deleted while idle.
	first := podOf()
	deletePod(t, tc, ns, first)
	assertBound(t, port)
	if err := echoOnce(addr(f), small); err != nil {
		t.Fatalf("after deleting idle pod %s: %v", first, err)
	}
	assertBound(t, port)
	if podOf() == first {
		t.Errorf("still on deleted pod %s", first)
	}

	// 2. Deleted mid-stream: the open connection ends, the next one works.
	c, err := net.Dial("tcp", addr(f))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	second := podOf()
	deletePod(t, tc, ns, second)
	_, err = c.Read(buf)
	var nerr net.Error
	if err == nil || (errors.As(err, &nerr) && nerr.Timeout()) {
		t.Fatalf("in-flight connection on deleted pod %s: %v, want EOF or reset", second, err)
	}
	c.Close()
	assertBound(t, port)
	if err := echoOnce(addr(f), small); err != nil {
		t.Fatalf("after deleting pod %s mid-stream: %v", second, err)
	}

	// 3. A rollout: new connections reach the new ReplicaSet's pod.
	old := podOf()
	_, err = tc.Kube.AppsV1().Deployments(ns).Patch(ctx, "echo", types.StrategicMergePatchType,
		[]byte(`{"spec":{"template":{"metadata":{"annotations":{"roll":"1"}}}}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = testcluster.Poll(ctx, 50*time.Millisecond, func() (bool, error) {
		assertBound(t, port)
		return podOf() != old && podOf() != "", nil
	})
	if err != nil {
		t.Fatalf("the forward never moved off %s after the rollout", old)
	}
	if err := echoOnce(addr(f), small); err != nil {
		t.Fatalf("after the rollout: %v", err)
	}
	srv, err := b.WaitBound(ctx, podOf())
	if err != nil || srv.Accepted() == 0 {
		t.Errorf("the new pod %s got no connection: %v", podOf(), err)
	}
	if st := f.Status(); st.Failures != 0 {
		t.Errorf("%d failed connections; events:\n%s", st.Failures, events(st))
	}
}

func deletePod(t *testing.T, tc *testcluster.Cluster, ns, pod string) {
	t.Helper()
	zero := int64(0)
	if err := tc.Kube.CoreV1().Pods(ns).Delete(context.Background(), pod, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatalf("delete pod %s: %v", pod, err)
	}
}

func events(st Status) string {
	var b strings.Builder
	for _, e := range st.Events {
		b.WriteString("  " + e.String() + "\n")
	}
	return b.String()
}

func TestForward200Concurrent(t *testing.T) {
	tc, _, ns := echoFixture(t)
	f := startForward(t, tc, Spec{Namespace: ns, Target: "service/echo", Ports: []string{"0:80"}}, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			if err := echoOnce(addr(f), []byte(strings.Repeat(strconv.Itoa(i), 1000))); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := f.Status(); st.Total != 200 || st.Failures != 0 {
		t.Errorf("total %d failures %d", st.Total, st.Failures)
	}
}

// TestForwardStatesAndRefusal asserts the state machine with its reasons, in order: listening
// while the target has no pod (not connected to any pod yet, so nothing is being reconnected);
// connected once a pod is Ready, although that pod's port refuses: connected says the tunnel to
// the pod is up, and a forward does not probe the port, so until a connection tries it nothing
// is known to be wrong; failed at the first refused connection (which is retried until the
// pod is past its 3 s start grace), with the reason, counted as one failure, the local port
// still bound; connected again when a connection gets through;
// reconnecting when the pod goes; stopped at the end (startForward's cleanup).
func TestForwardStatesAndRefusal(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, 2*time.Minute)
	ns := tc.Namespace(t, "fwd-states")
	objs, _ := testcluster.Decode([]byte(echoApp))
	dep := objs[0]
	_ = setReplicas(dep, 0)
	if err := tc.Apply(ctx, ns, objs...); err != nil {
		t.Fatal(err)
	}
	f := startForward(t, tc, Spec{Namespace: ns, Target: "deployment/echo", Ports: []string{"0:7000"}, Hold: 2 * time.Second}, Options{})
	port := f.Ports()[0].Local
	waitState(t, f, Listening, "no pod of deployment/echo exists")

	// A pod whose port refuses: its PortForward points at a reserved port nothing listens on.
	reserved := testport.Reserve(t)
	target := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: reserved.Number}
	dep = dep.DeepCopy()
	dep.SetManagedFields(nil)
	dep.SetResourceVersion("")
	_ = setReplicas(dep, 1)
	if err := tc.Apply(ctx, ns, dep); err != nil {
		t.Fatal(err)
	}
	pods, err := tc.WaitPods(ctx, ns, "app=echo", 1)
	if err != nil {
		t.Fatal(err)
	}
	pod := pods[0]
	if err := tc.Apply(ctx, ns, testcluster.PortForwardFor(&pod, target)); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, f, Connected, "connected to pod "+pod.Name)
	if st.Pod != pod.Name || st.Total != 0 {
		t.Errorf("connected to pod %q after %d connections, want %s before any", st.Pod, st.Total, pod.Name)
	}
	if err := echoOnce(addr(f), []byte("x")); err == nil {
		t.Fatal("a connection got through to a refusing port")
	}
	st = waitState(t, f, Failed, "pod port 7000: ")
	if !strings.Contains(st.Reason, "refused") {
		t.Errorf("failed reason %q does not say the port refused", st.Reason)
	}
	if st.Pod != pod.Name || st.Failures != 1 {
		t.Errorf("failed on pod %q with %d failures, want %s and 1", st.Pod, st.Failures, pod.Name)
	}
	assertBound(t, port)

	// The port comes up: the next connection works and the status recovers.
	ln, err := net.Listen("tcp", reserved.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serveEcho(ln)
	if err := echoOnce(addr(f), []byte("back")); err != nil {
		t.Fatalf("after the port came up: %v", err)
	}
	waitState(t, f, Connected, "pod port answers again")

	deletePod(t, tc, ns, pod.Name)
	waitState(t, f, Reconnecting, "")

	var seq []string // the states in order; a new reason in the same state counts once
	for _, e := range f.Status().Events {
		if len(seq) == 0 || seq[len(seq)-1] != string(e.State) {
			seq = append(seq, string(e.State))
		}
	}
	// The deployment replaces the pod, so a connected to the new one may follow.
	const want = "listening,connected,failed,connected,reconnecting"
	if got := strings.Join(seq, ","); !strings.HasPrefix(got, want) {
		t.Errorf("states %s, want them to start with %s; events:\n%s", got, want, events(f.Status()))
	}
}

func setReplicas(obj *unstructured.Unstructured, n int64) error {
	return unstructured.SetNestedField(obj.Object, n, "spec", "replicas")
}

// serveEcho echoes every connection ln accepts, until it is closed: a pod's port coming up.
func serveEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() { testcluster.Echo("", c); c.Close() }()
	}
}

// waitState waits for the forward to reach state s with a reason containing reason.
func waitState(t *testing.T, f *Forward, s State, reason string) Status {
	t.Helper()
	var st Status
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		st = f.Status()
		if st.State == s && strings.Contains(st.Reason, reason) {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("state %s (%q), want %s (%q); events:\n%s", st.State, st.Reason, s, reason, events(st))
	return st
}

// TestPortInUse: a local port another process holds is an error naming the port and the
// process, and the forward binds nothing.
func TestPortInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	free := testport.Reserve(t) // bound by the forward before it meets the held port
	freePort := free.Number
	f, err := New(nil, nil, Spec{Namespace: "x", Target: "service/web", Ports: []string{fmt.Sprintf("%d:80", freePort), fmt.Sprintf("%d:81", port)}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = f.Run(context.Background())
	if err == nil {
		t.Fatal("Run bound a port that is in use")
	}
	self := fmt.Sprintf("pid %d", os.Getpid())
	for _, want := range []string{fmt.Sprintf("local port %d on 127.0.0.1 is already in use", port), self, "choose another local port"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// The first port was released again: all or nothing.
	if ln, err := net.Listen("tcp", free.Addr()); err != nil {
		t.Errorf("port %d stayed bound after the failed start: %v", freePort, err)
	} else {
		ln.Close()
	}
	if st := f.Status(); st.State != Failed || !strings.Contains(st.Reason, "already in use") {
		t.Errorf("status %s %q", st.State, st.Reason)
	}
}

func TestParseSpec(t *testing.T) {
	for _, bad := range []struct{ target, port, want string }{
		{"web", "80", "want KIND/NAME"},
		{"ingress/web", "80", `kind "ingress" is not one of`},
		{"svc/web", "x:80", `local port "x" is not a number`},
		{"svc/web", "80:", "the remote port is missing"},
		{"svc/web", "80:70000", "out of range"},
	} {
		_, err := New(nil, nil, Spec{Target: bad.target, Ports: []string{bad.port}}, Options{})
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s %s: %v, want %q", bad.target, bad.port, err, bad.want)
		}
	}
	ports, err := parsePorts([]string{"8080:http", "9090", ":metrics", "0:5432"})
	if err != nil {
		t.Fatal(err)
	}
	want := []portSpec{{8080, "http"}, {9090, "9090"}, {0, "metrics"}, {0, "5432"}}
	if fmt.Sprint(ports) != fmt.Sprint(want) {
		t.Errorf("ports %v, want %v", ports, want)
	}
}

// TestForwardSurvivesAPIServerRestart kills the kube-apiserver under a forward: the forward
// reports reconnecting with the reason while the local port stays bound, and recovers by
// itself once the API server is back.
func TestForwardSurvivesAPIServerRestart(t *testing.T) {
	testcluster.Disruptive(t)
	tc, _, ns := echoFixture(t)
	var attempts atomic.Int64 // waits between attempts to reach the pod
	f := startForward(t, tc, Spec{Namespace: ns, Target: "service/echo", Ports: []string{"0:tcp"}}, Options{
		After: func(d time.Duration) <-chan time.Time { attempts.Add(1); return time.After(d) },
	})
	port := f.Ports()[0].Local
	// On a cluster started a moment ago, kwok may not serve the pod's PortForward yet.
	err := testcluster.Poll(testcluster.Context(t, 20*time.Second), 100*time.Millisecond, func() (bool, error) {
		return echoOnce(addr(f), []byte("before")) == nil, nil
	})
	if err != nil {
		t.Fatalf("the forward never worked before the restart: %v", err)
	}
	api := tc.FindAPIServer(t)
	api.Kill(t)
	restarted := false
	defer func() {
		if !restarted {
			api.Start(t)
		}
	}()
	// The README's words: reconnecting, cannot reach the pod, connection refused.
	st := waitState(t, f, Reconnecting, "cannot reach pod")
	if !strings.Contains(st.Reason, "connection refused") {
		t.Errorf("reason while the API server is down: %q, want the refusal named", st.Reason)
	}
	assertBound(t, port)
	// Stay down through a few reconnect attempts: the backoff doubles from 50 ms up to 5 s,
	// so 11 s hold at least two more whatever it had reached.
	before := attempts.Load()
	time.Sleep(11 * time.Second)
	assertBound(t, port)
	if n := attempts.Load() - before; n < 2 {
		t.Errorf("%d attempts to reconnect in 11 s with the API server down, want the backoff's (at least 2)", n)
	}
	api.Start(t)
	restarted = true
	// Recovery is the forward's own doing: no request goes through it until it says it is
	// connected again.
	deadline := time.Now().Add(60 * time.Second)
	for f.Status().State != Connected && time.Now().Before(deadline) {
		assertBound(t, port)
		time.Sleep(50 * time.Millisecond)
	}
	if st := f.Status(); st.State != Connected {
		t.Fatalf("not connected within 60 s of the API server's restart: %s (%s)\nevents:\n%s", st.State, st.Reason, events(st))
	}
	if err := echoOnce(addr(f), []byte("after")); err != nil {
		t.Fatalf("connected again, but a request failed: %v\nevents:\n%s", err, events(f.Status()))
	}
}
