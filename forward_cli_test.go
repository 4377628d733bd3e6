package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/forward"
	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testfs"
)

// lockedBuffer is a bytes.Buffer for one writer goroutine and one reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestForwardCommand: after `up`, `roro forward` binds the app's forward, prints where and
// each state change, carries bytes to the pod, and ends cleanly on Ctrl-C (context end).
func TestForwardCommand(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-forward-cli")
	dir := testfs.Layout(t, map[string]string{
		"roro.json": `{"name": "fwd", "members": ["apps/*"]}`,
		"apps/echo/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"],
  "forwards": [{"target": "service/echo", "ports": ["0:tcp"]}]}`,
		"apps/echo/m.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: echo\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: echo}\n  template:\n    metadata:\n      labels: {app: echo}\n    spec:\n      containers:\n      - name: echo\n        image: example.invalid/echo:1\n        ports:\n        - {name: echo, containerPort: 7000}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: echo\nspec:\n  selector: {app: echo}\n  ports:\n  - {name: tcp, port: 80, targetPort: echo}\n",
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })
	// The binder gives the pod (and any replacement) a local echo server to forward to.
	if code, _, errOut := runCLI(t, append(kc, "up", "--no-wait")...); code != exitOK {
		t.Fatalf("up: %s", errOut)
	}
	binder := testcluster.StartBinder(t, tc, ns, "app=echo", testcluster.Echo)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut lockedBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, append(kc, "forward", "echo"), &out, &errOut) }()
	defer cancel()
	mapping := regexp.MustCompile(`127\.0\.0\.1:(\d+) → service/echo tcp`)
	var local string
	err := testcluster.Poll(testcluster.Context(t, 30*time.Second), 20*time.Millisecond, func() (bool, error) {
		m := mapping.FindStringSubmatch(out.String())
		if m != nil && strings.Contains(out.String(), "connected pod echo-") {
			local = "127.0.0.1:" + m[1]
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("forward never reported its port and pod: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	// The forward may reach the pod before the binder has given it a server: wait for it, as
	// a real pod's port listens before the pod is Ready.
	pod := regexp.MustCompile(`connected pod (echo-[a-z0-9-]+)`).FindStringSubmatch(out.String())[1]
	if _, err := binder.WaitBound(testcluster.Context(t, 30*time.Second), pod); err != nil {
		t.Fatal(err)
	}
	// kwok learns of the binder's PortForward through a watch: under load a first stream can
	// reach the pod before kwok knows where to send it, and fail. A real pod's port listens
	// before the pod is Ready; here a fresh connection is tried, up to three times.
	msg := []byte("through roro forward")
	var echoErr error
	for try := 0; try < 3; try++ {
		echoErr = func() error {
			c, err := net.Dial("tcp", local)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(msg); err != nil {
				return err
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				return fmt.Errorf("echo %q, %v", got, err)
			}
			return nil
		}()
		if echoErr == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if echoErr != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", echoErr, out.String(), errOut.String())
	}
	// The running forward watches the files: a broken edit is reported with its place and
	// changes nothing; putting the file back is reported too.
	appJSON := filepath.Join(dir, "apps/echo/app.json")
	good, err := os.ReadFile(appJSON)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ data, want string }{
		{"{\n  \"manifests\": 3\n}\n", "the workspace's files do not load; forwarding as before the edit: " + appJSON + ":2:"},
		{string(good), "the workspace loads again"},
	} {
		if err := os.WriteFile(appJSON, []byte(step.data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := testcluster.Poll(testcluster.Context(t, 5*time.Second), 20*time.Millisecond, func() (bool, error) {
			return strings.Contains(errOut.String(), step.want), nil
		}); err != nil {
			t.Fatalf("forward did not say %q:\n%s", step.want, errOut.String())
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("forward ended with %d: %s", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("forward did not end on Ctrl-C")
	}
	// Every change is printed once, in order, and the end comes last.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !strings.Contains(lines[len(lines)-1], "stopped") {
		t.Errorf("the last line is not the stop:\n%s", out.String())
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] {
			t.Errorf("printed twice: %s", l)
		}
		seen[l] = true
	}
	if ln, err := net.Listen("tcp", local); err != nil {
		t.Errorf("the port stayed bound after the end: %v", err)
	} else {
		ln.Close()
	}
}

// TestUpForward: `roro up --forward` brings the app up, then forwards its ports (printing
// where and each change) until Ctrl-C, which stops the forwards and leaves the app up: `roro
// ps` then lists the workspace's one instance, echo in the test's namespace, with "healthy"
// in its HEALTH column. The workspace's name is unique to the run, as ps lists the instances
// of every workspace of that name in the cluster.
func TestUpForward(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-up-forward-cli")
	dir := testfs.Layout(t, map[string]string{
		"roro.json":          `{"name": "` + testcluster.UniqueName("upfwd-cli") + `", "members": ["apps/*"]}`,
		"apps/echo/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"], "forwards": [{"target": "deployment/echo", "ports": ["0:7000"]}]}`,
		"apps/echo/m.yaml":   "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: echo\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: echo}\n  template:\n    metadata:\n      labels: {app: echo}\n    spec:\n      containers:\n      - {name: echo, image: example.invalid/echo:1}\n",
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut lockedBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, append(kc, "up", "--forward"), &out, &errOut) }()
	err := testcluster.Poll(testcluster.Context(t, 30*time.Second), 20*time.Millisecond, func() (bool, error) {
		return strings.Contains(out.String(), "connected pod echo-") && strings.Contains(errOut.String(), "forwarding; Ctrl-C"), nil
	})
	if err != nil {
		t.Fatalf("up --forward never reported a connected forward: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	if !regexp.MustCompile(`127\.0\.0\.1:\d+ → deployment/echo 7000`).MatchString(out.String()) {
		t.Errorf("no address line:\n%s", out.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("up --forward did not end on Ctrl-C")
	}
	code, psOut, psErr := runCLI(t, append(kc, "ps")...)
	rows := tableRows(psOut)
	if code != exitOK || len(rows) != 1 || rows[0]["APP"] != "echo" || rows[0]["INSTANCE"] != "default" ||
		rows[0]["NAMESPACE"] != ns || rows[0]["HEALTH"] != "healthy" {
		t.Errorf("ps after Ctrl-C: exit %d, want one row, echo default in %s, healthy; rows %v:\n%s%s", code, ns, rows, psOut, psErr)
	}
}

// tableRows reads a table as cli-runtime's printer writes it: the first line names the
// columns, and each cell of a row lies under its column's name (from its first character
// to the next column's). Lines that start with a space (the notes ps prints below its table)
// are not rows.
func tableRows(out string) []map[string]string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 {
		return nil
	}
	header := lines[0]
	var names []string
	var starts []int
	for _, f := range regexp.MustCompile(`\S+`).FindAllStringIndex(header, -1) {
		names = append(names, header[f[0]:f[1]])
		starts = append(starts, f[0])
	}
	var rows []map[string]string
	for _, line := range lines[1:] {
		if line == "" || line[0] == ' ' {
			continue
		}
		row := map[string]string{}
		for i, name := range names {
			from, to := starts[i], len(line)
			if i+1 < len(starts) {
				to = min(starts[i+1], len(line))
			}
			if from < len(line) {
				row[name] = strings.TrimSpace(line[from:to])
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// TestForwardPrinterPastTheEventLogBound: the printer keeps printing new events after the
// forward's event log has reached its bound (200) and drops its oldest events, and prints
// none twice.
func TestForwardPrinterPastTheEventLogBound(t *testing.T) {
	var out, errOut lockedBuffer
	print := forwardPrinter(&options{stdout: &out, stderr: &errOut})
	status := func(from, to uint64) []runtime.ForwardView {
		st := forward.Status{Target: "service/api", Namespace: "ns", Address: "127.0.0.1", Ports: []forward.Port{{Local: 8080, Remote: "http"}}}
		for seq := from; seq <= to; seq++ {
			st.Events = append(st.Events, forward.Event{Seq: seq, State: forward.Connected, Message: fmt.Sprintf("event %d", seq)})
		}
		return []runtime.ForwardView{{App: "api", Instance: "default", Status: st}}
	}
	print(status(1, 200))
	print(status(2, 201)) // the log is full: each new event pushes the oldest out
	print(status(51, 250))
	print(status(51, 250)) // nothing new
	got := strings.Count(out.String(), "event ")
	if got != 250 || !strings.Contains(out.String(), "event 250\n") {
		t.Errorf("printed %d events, want 250:\n%s", got, out.String())
	}
	if strings.Count(out.String(), "127.0.0.1:8080 → service/api http") != 1 {
		t.Errorf("the address line is not printed exactly once:\n%s", out.String())
	}
	print([]runtime.ForwardView{{App: "db", Instance: "default", Err: "local port 5432 is already in use"}})
	if !strings.Contains(errOut.String(), "db/default: forwards not running: local port 5432 is already in use") {
		t.Errorf("stderr: %s", errOut.String())
	}
}
