package runtime

import (
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/forward"
	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testfs"
	"github.com/rorokube/roro/internal/testport"
)

// TestUpStartsForwardsAndDownStopsThem: up with Forward starts the app's forwards once it is
// healthy, their status reaches the runtime's snapshot, bytes reach the pod, and down stops
// them and frees the port.
func TestUpStartsForwardsAndDownStopsThem(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-up-forward")
	dir := testfs.Layout(t, map[string]string{
		"roro.json":          `{"name": "` + testcluster.UniqueName("upfwd-engine") + `", "members": ["apps/*"]}`,
		"apps/echo/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"], "forwards": [{"target": "service/echo", "ports": ["0:tcp"]}]}`,
		"apps/echo/m.yaml":   "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: echo\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: echo}\n  template:\n    metadata:\n      labels: {app: echo}\n    spec:\n      containers:\n      - name: echo\n        image: example.invalid/echo:1\n        ports:\n        - {name: echo, containerPort: 7000}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: echo\nspec:\n  selector: {app: echo}\n  ports:\n  - {name: tcp, port: 80, targetPort: echo}\n",
	})
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	rt := kubeEngine(t, tc, ws)
	t.Cleanup(func() { _, _ = runDown(context.Background(), rt, DownRequest{}) })
	testcluster.StartBinder(t, tc, ns, "app=echo", testcluster.Echo)
	ctx := testcluster.Context(t, time.Minute)
	if err := runUp(ctx, rt, UpRequest{Forward: true}); err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, rt, 30*time.Second, func(s *Snapshot) bool {
		return len(s.Forwards) == 1 && s.Forwards[0].State == forward.Connected
	})
	fs := s.Forwards[0]
	if fs.Target != "service/echo" || fs.Namespace != ns || len(fs.Ports) != 1 || fs.Ports[0].Resolved != 7000 {
		t.Errorf("forward in the snapshot: %+v", fs)
	}
	local := "127.0.0.1:" + strconv.Itoa(fs.Ports[0].Local)
	c, err := net.Dial("tcp", local)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte("up and forwarded")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("up and forwarded"))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, []byte("up and forwarded")) {
		t.Fatalf("echo %q %v", got, err)
	}
	c.Close()
	if _, err := runDown(ctx, rt, DownRequest{}); err != nil {
		t.Fatal(err)
	}
	if fw := rt.Snapshot().Forwards; len(fw) != 0 {
		t.Errorf("forwards still running after down: %+v", fw)
	}
	ln, err := net.Listen("tcp", local)
	if err != nil {
		t.Errorf("port %s still bound after down: %v", local, err)
	} else {
		ln.Close()
	}
	waitFor(t, rt, 30*time.Second, func(s *Snapshot) bool { return len(s.Forwards) == 0 })
}

// TestForwardsThatCannotBindAreNotRunning: when a forward's local port is taken, up with
// forwards fails saying which port, nothing counts as forwarded (the snapshot says why), and
// once the port is free the next start works.
func TestForwardsThatCannotBindAreNotRunning(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-taken-port")
	reserved := testport.Reserve(t) // closing the listener below gives the port back to the reservation
	taken, err := net.Listen("tcp", reserved.Addr())
	if err != nil {
		t.Fatal(err)
	}
	port := reserved.String()
	rt := echoEngine(t, tc, ns, `{"target": "deployment/echo", "ports": ["0:tcp"]}, {"target": "deployment/echo", "ports": ["`+port+`:tcp"]}`)
	ctx := testcluster.Context(t, time.Minute)
	err = runUp(ctx, rt, UpRequest{Forward: true})
	if err == nil || !strings.Contains(err.Error(), "local port "+port+" on 127.0.0.1 is already in use") ||
		!strings.Contains(err.Error(), "it is up, but its forwards did not start") {
		t.Fatalf("up with a taken port: %v", err)
	}
	s := waitFor(t, rt, 10*time.Second, func(s *Snapshot) bool { return len(s.Forwards) == 1 && s.Forwards[0].Err != "" })
	if !strings.Contains(s.Forwards[0].Err, "already in use") {
		t.Errorf("snapshot: %+v", s.Forwards)
	}
	taken.Close()
	if err := rt.StartForwards(ctx, "echo", Selection{}); err != nil {
		t.Fatalf("start once the port is free: %v", err)
	}
	waitFor(t, rt, 30*time.Second, func(s *Snapshot) bool {
		return len(s.Forwards) == 2 && s.Forwards[0].State == forward.Connected && s.Forwards[1].State == forward.Connected
	})
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ok" {
		t.Errorf("echo %q %v", got, err)
	}
}

// TestReloadKeepsUntouchedForwards: after a reload that changes one app's forward, the other
// app's forward keeps its port and its open connection; the changed one restarts on its new
// port.
func TestReloadKeepsUntouchedForwards(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-reload-forwards")
	newPort := testport.Reserve(t).String() // b's new port, written into its app.json
	layout := func(bPorts string) map[string]string {
		return map[string]string{
			"roro.json":       `{"name": "reload", "members": ["apps/*"]}`,
			"apps/a/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"], "forwards": [{"target": "deployment/echo", "ports": ["0:tcp"]}]}`,
			"apps/a/m.yaml":   deployment("echo"),
			"apps/b/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"], "forwards": [{"target": "deployment/echo", "ports": ["` + bPorts + `"]}]}`,
			"apps/b/m.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
		}
	}
	dir := testfs.Layout(t, layout("0:tcp"))
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	rt := kubeEngine(t, tc, ws)
	t.Cleanup(func() { _, _ = runDown(context.Background(), rt, DownRequest{}) })
	testcluster.StartBinder(t, tc, ns, "app=echo", testcluster.Echo)
	ctx := testcluster.Context(t, time.Minute)
	if err := runUp(ctx, rt, UpRequest{Forward: true}); err != nil {
		t.Fatal(err)
	}
	connected := func(s *Snapshot) bool {
		return len(s.Forwards) == 2 && s.Forwards[0].State == forward.Connected && s.Forwards[1].State == forward.Connected
	}
	s := waitFor(t, rt, 30*time.Second, connected)
	aPort := s.Forwards[0].Ports[0].Local
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(aPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	echo := func(msg string) {
		t.Helper()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
			t.Fatalf("echo %q: %q %v", msg, got, err)
		}
	}
	echo("before")
	testfs.Write(t, dir, layout(newPort+":tcp"))
	ws2, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Reload(ws2); err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, rt, 30*time.Second, func(s *Snapshot) bool {
		return connected(s) && strconv.Itoa(s.Forwards[1].Ports[0].Local) == newPort
	})
	if s.Forwards[0].Ports[0].Local != aPort || s.Forwards[0].Total != 1 {
		t.Errorf("a's forward was restarted: %+v", s.Forwards[0])
	}
	echo("after") // a's connection lives on
}

// TestForwardCountersReachTheSnapshot: traffic through a forward shows in the snapshot's
// counters within a few seconds, though no state changed.
func TestForwardCountersReachTheSnapshot(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-forward-counters")
	rt := echoEngine(t, tc, ns, `{"target": "deployment/echo", "ports": ["0:tcp"]}`)
	ctx := testcluster.Context(t, time.Minute)
	if err := runUp(ctx, rt, UpRequest{Forward: true}); err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, rt, 30*time.Second, func(s *Snapshot) bool { return len(s.Forwards) == 1 && s.Forwards[0].State == forward.Connected })
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.Forwards[0].Ports[0].Local))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	msg := []byte("counted")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, len(msg))); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, rt, 5*time.Second, func(s *Snapshot) bool {
		f := s.Forwards[0]
		return f.Total == 1 && f.BytesOut == int64(len(msg)) && f.BytesIn == int64(len(msg))
	})
}

// echoEngine starts an engine over a workspace of one app, echo (a Deployment whose pod
// echoes on port 7000, named tcp), in namespace ns, with the given forwards (JSON objects);
// echo is taken down when the test ends.
func echoEngine(t *testing.T, tc *testcluster.Cluster, ns, forwards string) *Engine {
	t.Helper()
	dir := testfs.Layout(t, map[string]string{
		"roro.json":          `{"name": "echo", "members": ["apps/*"]}`,
		"apps/echo/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"], "forwards": [` + forwards + `]}`,
		"apps/echo/m.yaml":   deployment("echo"),
	})
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := kubeEngine(t, tc, ws)
	t.Cleanup(func() { _, _ = runDown(context.Background(), e, DownRequest{}) })
	testcluster.StartBinder(t, tc, ns, "app=echo", testcluster.Echo)
	return e
}
