package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testfs"
)

// TestPsWideAndLs: `ps -o wide` shows the ports and state of the forwards another roro
// process runs, with its pid, and stops showing them the moment that process is killed
// (issue 12: ps -o wide, roro ls); `roro ls` lists the workspace with what it last saw up.
func TestPsWideAndLs(t *testing.T) {
	tc := testcluster.Get(t)
	state, runDir := t.TempDir(), t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	t.Setenv("XDG_RUNTIME_DIR", runDir)
	ns := fmt.Sprintf("roro-ps-wide-%d", time.Now().UnixNano()%1e6)
	dir := testfs.Layout(t, map[string]string{
		"roro.json": `{"name": "psw", "members": ["apps/*"]}`,
		"apps/echo/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"],
  "forwards": [{"target": "service/echo", "ports": ["0:tcp"]}]}`,
		"apps/echo/m.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: echo\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: echo}\n  template:\n    metadata:\n      labels: {app: echo}\n    spec:\n      containers:\n      - name: echo\n        image: example.invalid/echo:1\n        ports:\n        - {name: echo, containerPort: 7000}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: echo\nspec:\n  selector: {app: echo}\n  ports:\n  - {name: tcp, port: 80, targetPort: echo}\n",
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })
	if code, _, errOut := runCLI(t, append(kc, "up")...); code != exitOK {
		t.Fatalf("up: %s", errOut)
	}

	code, out, errOut := runCLI(t, append(kc, "ps", "-o", "wide")...)
	if code != exitOK || !strings.Contains(out, "PORTS") || !rowHas(out, "echo", "healthy", "2/2", "not forwarded") {
		t.Fatalf("ps -o wide with no forward: exit %d\n%s%s", code, out, errOut)
	}

	fw := exec.Command(os.Args[0], append(kc, "forward", "echo")...)
	fw.Env = append(os.Environ(), "RORO_TEST_MAIN=1")
	stdout, err := fw.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fw.Process.Kill(); _ = fw.Wait() })
	connected := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, pod, ok := strings.Cut(sc.Text(), "connected pod "); ok {
				connected <- strings.TrimSuffix(strings.Fields(pod)[0], ":")
			}
		}
	}()
	var pod string
	select {
	case pod = <-connected:
	case <-time.After(30 * time.Second):
		t.Fatal("roro forward never connected")
	}
	pid := fw.Process.Pid

	// The forward's state is published as it changes: wait for ps to see "connected".
	want := fmt.Sprintf("service/echo connected to %s (roro forward, pid %d)", pod, pid)
	err = testcluster.Poll(testcluster.Context(t, 10*time.Second), 50*time.Millisecond, func() (bool, error) {
		_, out, _ = runCLI(t, append(kc, "ps", "-o", "wide")...)
		return strings.Contains(out, want), nil
	})
	if err != nil || !rowHas(out, "echo", "healthy", "127.0.0.1:", "->7000", want) {
		t.Fatalf("ps -o wide while roro forward runs: %v\n%s", err, out)
	}
	if _, plain, _ := runCLI(t, append(kc, "ps")...); strings.Contains(plain, "PORTS") || strings.Contains(plain, "roro forward") || !rowHas(plain, "echo", "healthy") {
		t.Errorf("plain ps shows the wide columns or lacks the row:\n%s", plain)
	}
	code, out, _ = runCLI(t, append(kc, "ps", "-o", "json")...)
	var rows []psRow
	if code != exitOK || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || len(rows[0].Forwards) != 1 ||
		rows[0].Forwards[0].PID != pid || rows[0].Forwards[0].Pod != pod || rows[0].Created.IsZero() {
		t.Errorf("ps -o json: exit %d\n%s", code, out)
	}

	// Killed, with no chance to clean up: its forward is gone from ps at once, and so are its files.
	if err := fw.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = fw.Wait()
	_, out, _ = runCLI(t, append(kc, "ps", "-o", "wide")...)
	if !rowHas(out, "echo", "not forwarded") || strings.Contains(out, "connected") {
		t.Errorf("ps -o wide after the forward was killed:\n%s", out)
	}
	if left, _ := filepath.Glob(filepath.Join(runDir, "roro", "forwards", "*")); len(left) != 0 {
		t.Errorf("the killed process's board is left: %v", left)
	}

	code, out, _ = runCLI(t, "ls", "-o", "json")
	var known []runtime.KnownWorkspace
	if code != exitOK || json.Unmarshal([]byte(out), &known) != nil || len(known) != 1 || known[0].Dir != dir ||
		known[0].Name != "psw" || len(known[0].Deployed) != 1 || known[0].Deployed[0].Namespace != ns {
		t.Errorf("ls -o json: exit %d\n%s", code, out)
	}
	if _, out, _ := runCLI(t, "ls"); !rowHas(out, "psw", "1", dir) {
		t.Errorf("ls:\n%s", out)
	}
}

// rowHas reports whether one line of out starts with first and holds every one of rest.
func rowHas(out, first string, rest ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, first+" ") {
			continue
		}
		ok := true
		for _, r := range rest {
			ok = ok && strings.Contains(line, r)
		}
		if ok {
			return true
		}
	}
	return false
}
