package runtime

import (
	"context"
	"errors"
	"net"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/forward"
	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testfs"
)

// deployment is a one-replica Deployment named name with a container port 7000.
func deployment(name string) string {
	return "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: " + name + "\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: " + name + "}\n  template:\n    metadata:\n      labels: {app: " + name + "}\n    spec:\n      containers:\n      - name: c\n        image: example.invalid/" + name + ":1\n        ports:\n        - {name: tcp, containerPort: 7000}\n"
}

// TestEngineConnectsWhenAPIServerComesUp: with no API server answering, the engine starts at
// once, shows every environment unreachable with the reason within 5 s, and the workspace
// stays usable offline (render, validate); when the API server comes up, the engine connects
// by itself and an up works.
func TestEngineConnectsWhenAPIServerComesUp(t *testing.T) {
	tc := testcluster.Get(t)
	gate := tc.NewGate(t)
	tc.InstallDevEnvironments(t)
	dir := copyTree(t, "../../fixtures/demo")
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e, err := New(ws, Options{
		Connect:  KubeConnector(gate.Kubeconfig, "", kube.DefaultTimeout, time.Now, nil),
		Watch:    true,
		RetryMin: 100 * time.Millisecond, RetryMax: 500 * time.Millisecond,
		LookupHost: func(string) (string, bool) { return "", false },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if d := time.Since(start); d > time.Second {
		t.Errorf("New took %s with no cluster", d)
	}
	s := waitFor(t, e, 5*time.Second, func(s *Snapshot) bool {
		for _, c := range s.Connections {
			if c.State != Unreachable {
				return false
			}
		}
		return len(s.Connections) == 2
	})
	for _, c := range s.Connections {
		if !strings.Contains(c.Reason, "connection refused") {
			t.Errorf("environment %s: reason %q, want the refusal", c.Environment, c.Reason)
		}
	}
	if len(s.Apps) != 3 {
		t.Errorf("apps while offline: %+v", s.Apps)
	}
	// Offline, the workspace is still there to read and check.
	if res, _, err := RenderOffline(context.Background(), e.opts.Render, e.Workspace(), "api", Selection{}, nil, nil); err != nil || len(res.Objects) == 0 {
		t.Errorf("render offline: %v", err)
	}
	if v := Validate(context.Background(), e.opts.Render, e.Workspace()); len(v.Problems) != 0 || v.Renders == 0 {
		t.Errorf("validate offline: %+v", v)
	}
	gate.Open(t)
	s = waitFor(t, e, 10*time.Second, func(s *Snapshot) bool {
		return s.Connections[0].State == Connected && s.Connections[1].State == Connected
	})
	if s.Connections[0].Context == "" || !strings.Contains(s.Connections[0].String(), "connected to ") {
		t.Errorf("connection %+v", s.Connections[0])
	}
	ctx := testcluster.Context(t, time.Minute)
	t.Cleanup(func() {
		_, _ = runDown(context.Background(), e, DownRequest{Selection: Selection{Apps: []string{"db"}}})
	})
	if err := runUp(ctx, e, UpRequest{Selection: Selection{Apps: []string{"db"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, e, 30*time.Second, func(s *Snapshot) bool {
		iv := instanceOf(s, "db", "default")
		return iv.Running && iv.Health == Healthy && iv.Context != ""
	})
}

// TestEngineRestart: a restart replaces the pods of an instance's Deployment, as `kubectl
// rollout restart` does, and ends once they are healthy again.
func TestEngineRestart(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-restart-test")
	dir := testfs.Layout(t, map[string]string{
		"roro.json":         `{"name": "restart", "members": ["apps/*"]}`,
		"apps/one/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"]}`,
		"apps/one/m.yaml":   deployment("one"),
	})
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := kubeEngine(t, tc, ws)
	ctx := testcluster.Context(t, time.Minute)
	t.Cleanup(func() { _, _ = runDown(context.Background(), e, DownRequest{}) })
	if err := runUp(ctx, e, UpRequest{}); err != nil {
		t.Fatal(err)
	}
	before, err := tc.WaitPods(ctx, ns, "app=one", 1)
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	op, err := e.Restart("one", Selection{}, rec.add)
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Wait(ctx); err != nil {
		t.Fatalf("restart: %v\n%v", err, rec.events)
	}
	if got := rec.steps(StepRestart); len(got) != 1 || !strings.Contains(got[0], "Deployment "+ns+"/one") {
		t.Errorf("restart steps %v", got)
	}
	dep, err := tc.Kube.AppsV1().Deployments(ns).Get(ctx, "one", metav1.GetOptions{})
	if err != nil || dep.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" {
		t.Fatalf("no restartedAt on the pod template: %v %v", err, dep.Spec.Template.Annotations)
	}
	err = testcluster.Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		pods, err := tc.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=one"})
		if err != nil {
			return false, nil
		}
		for _, p := range pods.Items {
			if p.UID == before[0].UID || !testcluster.PodReady(&p) {
				return false, nil
			}
		}
		return len(pods.Items) == 1, nil
	})
	if err != nil {
		t.Errorf("the pod was not replaced: %v", err)
	}
	if _, err := e.Restart("nope", Selection{}, nil); err == nil {
		t.Error("restart of an unknown app started")
	}
}

// TestEngineConflictIsTyped: a field another manager owns stops up at the dry run, with a
// typed error that names the object, so a window can place it there.
func TestEngineConflictIsTyped(t *testing.T) {
	tc := testcluster.Get(t)
	ns := tc.Namespace(t, "roro-conflict")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shared", Namespace: ns}, Data: map[string]string{"k": "theirs"}}
	if _, err := tc.Kube.CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{FieldManager: "someone-else"}); err != nil {
		t.Fatal(err)
	}
	dir := testfs.Layout(t, map[string]string{
		"roro.json":         `{"name": "conflict", "members": ["apps/*"]}`,
		"apps/one/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"]}`,
		"apps/one/m.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  k: ours\n",
	})
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := kubeEngine(t, tc, ws)
	err = runUp(testcluster.Context(t, time.Minute), e, UpRequest{})
	var dry *DryRunError
	var oe *kube.ObjectError
	var ce *kube.ConflictError
	if !errors.As(err, &dry) || !errors.As(err, &oe) || !errors.As(err, &ce) {
		t.Fatalf("error %v: want a DryRunError holding an ObjectError and a ConflictError", err)
	}
	if oe.Object != (kube.ObjectRef{Kind: "ConfigMap", Namespace: ns, Name: "shared"}) || oe.Op != "dry-run" {
		t.Errorf("object error %+v", oe)
	}
	if !strings.Contains(err.Error(), "--force-conflicts") {
		t.Errorf("the message does not say how to fix it: %v", err)
	}
	live, _ := tc.Kube.CoreV1().ConfigMaps(ns).Get(context.Background(), "shared", metav1.GetOptions{})
	if live.Data["k"] != "theirs" {
		t.Errorf("the conflicting value was written: %v", live.Data)
	}
}

// TestEngineCloseWithWorkRunning: Close, with an up waiting on an object that never gets
// healthy, a forward carrying a connection, log following and watches running, returns
// within 2 s and leaves no goroutine of its own behind.
func TestEngineCloseWithWorkRunning(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-close-test")
	dir := testfs.Layout(t, map[string]string{
		"roro.json":           `{"name": "close", "members": ["apps/*"]}`,
		"apps/echo/app.json":  `{"namespace": "` + ns + `", "manifests": ["m.yaml"], "forwards": [{"target": "deployment/echo", "ports": ["0:tcp"]}]}`,
		"apps/echo/m.yaml":    deployment("echo"),
		"apps/stuck/app.json": `{"namespace": "` + ns + `-stuck", "manifests": ["m.yaml"]}`,
		"apps/stuck/m.yaml":   "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: never-bound\nspec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: none\n  resources:\n    requests: {storage: 1Mi}\n",
	})
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	testcluster.StartBinder(t, tc, ns, "app=echo", testcluster.Echo)
	ctx := testcluster.Context(t, time.Minute)
	t.Cleanup(func() {
		cleanup := kubeEngine(t, tc, ws)
		_, _ = runDown(context.Background(), cleanup, DownRequest{DownOptions: DownOptions{Volumes: true}})
	})
	// Everything that runs once the test's own pod binder has settled was there before;
	// the connections the test's own client opens meanwhile (the binder's PortForward
	// objects) close before the check.
	settle(t)
	ignore := goleak.IgnoreCurrent()
	defer func() {
		if rt, err := rest.TransportFor(tc.Config); err == nil {
			utilnet.CloseIdleConnectionsFor(rt)
		}
		// client-go stops a transport's client-certificate rotation goroutines when the
		// transport is garbage collected (its TLS cache GC, on by default since 1.36): collect,
		// and give the cleanups a moment to run.
		for range 3 {
			goruntime.GC()
			time.Sleep(50 * time.Millisecond)
		}
		goleak.VerifyNone(t, ignore,
			goleak.IgnoreAnyFunction("github.com/rorokube/roro/internal/testcluster.(*PodServer).serve"),
			goleak.IgnoreAnyFunction("github.com/rorokube/roro/internal/testcluster.(*PodServer).serve.func1"))
	}()
	e, err := New(ws, Options{
		Connect: KubeConnector(tc.Kubeconfig, "", kube.DefaultTimeout, time.Now, nil),
		Watch:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := runUp(ctx, e, UpRequest{Selection: Selection{Apps: []string{"echo"}}, Forward: true}); err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, e, 30*time.Second, func(s *Snapshot) bool {
		return len(s.Forwards) == 1 && s.Forwards[0].State == forward.Connected
	})
	conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.Forwards[0].Ports[0].Local))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hold")); err != nil {
		t.Fatal(err)
	}
	if err := e.FollowLogs("echo", Selection{}); err != nil {
		t.Fatal(err)
	}
	op, err := e.Up(UpRequest{Selection: Selection{Apps: []string{"stuck"}}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, e, 30*time.Second, func(s *Snapshot) bool {
		for _, o := range s.Operations {
			if o.ID == op.ID() && o.Step == StepWait {
				return true
			}
		}
		return false
	})
	start := time.Now()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %s", d)
	}
	if !errors.Is(op.Err(), context.Canceled) {
		t.Errorf("the stuck up ended with %v", op.Err())
	}
}

// settle waits until the number of goroutines has not changed for 300 ms (up to 10 s), so
// that a goroutine-leak check starts from what the test's helpers run for good.
func settle(t testing.TB) {
	t.Helper()
	last, since := goruntime.NumGoroutine(), time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n := goruntime.NumGoroutine(); n != last {
			last, since = n, time.Now()
		}
		if time.Since(since) > 300*time.Millisecond {
			return
		}
	}
}
