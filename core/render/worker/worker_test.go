package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/render/worker"
	"github.com/rorokube/roro/core/workspace"
)

// TestMatchesInProcess: every instance of the demo, in every environment, renders to the same
// objects in a worker as in-process, and a broken template fails with the same located error.
func TestMatchesInProcess(t *testing.T) {
	ws, err := workspace.Load("../../../fixtures/demo")
	if err != nil {
		t.Fatal(err)
	}
	pool := worker.New(worker.Options{})
	defer pool.Close()
	ctx := context.Background()
	renders := 0
	for _, app := range ws.Apps {
		for _, inst := range append([]string{workspace.DefaultInstance}, app.InstanceNames()...) {
			for _, env := range ws.EnvironmentNames() {
				envs := map[string]string{}
				for _, src := range app.File.Env {
					envs[src.Name] = "value-of-" + src.Name
				}
				req := render.Request{Environment: env, Instance: inst, Env: envs}
				want, wantErr := render.App(ctx, render.InProcess{}, ws, app, req)
				got, gotErr := render.App(ctx, pool, ws, app, req)
				if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
					t.Fatalf("%s/%s in %s: error %v, in-process %v", app.Name, inst, env, gotErr, wantErr)
				}
				if wantErr != nil {
					t.Fatalf("%s/%s in %s: %v", app.Name, inst, env, wantErr)
				}
				if !reflect.DeepEqual(got.Objects, want.Objects) {
					t.Fatalf("%s/%s in %s: objects differ from in-process", app.Name, inst, env)
				}
				renders++
			}
		}
	}
	if renders < 9 {
		t.Fatalf("only %d renders compared", renders)
	}
}

// TestValueTypes: values keep their Go types across the pipe (a float, an int64 from --set,
// a json.Number, nil, nested lists and maps), so a template prints the same either way.
func TestValueTypes(t *testing.T) {
	pool := worker.New(worker.Options{Workers: 1})
	defer pool.Close()
	values := map[string]any{
		"f": 1.5, "big": int64(1) << 60, "n": json.Number("010"), "none": nil, "yes": true,
		"list": []any{"a", 2.0, map[string]any{"k": []any{}}}, "m": map[string]any{"x": map[string]any{}},
	}
	files := []render.File{{Name: "cm.yaml", Source: []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: types
data:
{{- range $k, $v := .Values }}
  {{ $k }}: {{ printf "%T %v" $v $v | quote }}
{{- end }}
`)}}
	data := &render.Context{Values: values}
	want, err := render.InProcess{}.Render(context.Background(), "go", files, data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pool.Render(context.Background(), "go", files, data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("worker rendered\n%v\nin-process\n%v", got, want)
	}
	if s := want[0].Objects[0]["data"].(map[string]any)["big"]; s != "int64 1152921504606846976" {
		t.Fatalf("big = %v", s)
	}
}

// tracked starts workers as this test binary does by default, and remembers them, so a test
// can see whether they still run.
type tracked struct {
	mu    sync.Mutex
	procs []*exec.Cmd
}

func (tr *tracked) command() (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	tr.mu.Lock()
	tr.procs = append(tr.procs, cmd)
	tr.mu.Unlock()
	return cmd, nil
}

// running counts the workers whose process is still there.
func (tr *tracked) running() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, c := range tr.procs {
		if c.Process != nil && syscall.Kill(c.Process.Pid, 0) == nil && !zombie(c.Process.Pid) {
			n++
		}
	}
	return n
}

// zombie reports whether pid has exited but not been waited for yet.
func zombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return strings.HasPrefix(rest, "Z")
}

// waitFor polls cond for up to two seconds.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

var loop = []render.File{{Name: "loop.yaml", Source: []byte("{{ range until 1000000000 }}{{ end }}")}}

// TestCancel: cancelling a render that never ends returns at once, kills its worker, and the
// pool goes on rendering with a new one.
func TestCancel(t *testing.T) {
	var tr tracked
	pool := worker.New(worker.Options{Workers: 1, Command: tr.command})
	defer pool.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err := pool.Render(ctx, "go", loop, &render.Context{})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "loop.yaml: render stopped") {
		t.Fatalf("err = %v, want the file and context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	if n := tr.running(); n != 0 {
		t.Fatalf("%d workers still run after the cancel", n)
	}
	if _, err := pool.Render(context.Background(), "go", good, &render.Context{}); err != nil {
		t.Fatalf("render after a cancel: %v", err)
	}
	if len(tr.procs) != 2 {
		t.Fatalf("%d workers started, want 2 (the killed one and its replacement)", len(tr.procs))
	}
}

var good = []render.File{{Name: "ok.yaml", Source: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n")}}

// TestReuseAndIdle: a worker serves render after render (a template error included) and
// stops once idle for Options.Idle; Close stops the rest.
func TestReuseAndIdle(t *testing.T) {
	var tr tracked
	pool := worker.New(worker.Options{Workers: 1, Idle: 200 * time.Millisecond, Command: tr.command})
	defer pool.Close()
	for i := range 5 {
		files := good
		if i == 2 {
			files = []render.File{{Name: "bad.yaml", Source: []byte("{{ .Values.nope }}")}}
		}
		_, err := pool.Render(context.Background(), "go", files, &render.Context{})
		if (err != nil) != (i == 2) {
			t.Fatalf("render %d: %v", i, err)
		}
	}
	if len(tr.procs) != 1 || tr.running() != 1 {
		t.Fatalf("%d workers started, %d running; want the one, reused", len(tr.procs), tr.running())
	}
	// The worker gets none of Roro's environment: only its bound and one P.
	for _, kv := range tr.procs[0].Env {
		if !strings.HasPrefix(kv, "RORO_RENDER_WORKER=") && kv != "GOMAXPROCS=1" {
			t.Errorf("the worker's environment has %q", kv)
		}
	}
	if !waitFor(func() bool { return tr.running() == 0 }) {
		t.Fatal("the idle worker still runs past Options.Idle")
	}
	if _, err := pool.Render(context.Background(), "go", good, &render.Context{}); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	if !waitFor(func() bool { return tr.running() == 0 }) {
		t.Fatal("a worker still runs after Close")
	}
	if _, err := pool.Render(context.Background(), "go", good, &render.Context{}); err == nil {
		t.Fatal("a closed pool rendered")
	}
}

// TestBrokenWorker: a worker that cannot start or dies for another reason is an error that
// says so, not a hang.
func TestBrokenWorker(t *testing.T) {
	pool := worker.New(worker.Options{Workers: 1, Command: func() (*exec.Cmd, error) { return exec.Command("/bin/false"), nil }})
	defer pool.Close()
	_, err := pool.Render(context.Background(), "go", good, &render.Context{})
	if err == nil || !strings.Contains(err.Error(), "the render process failed") {
		t.Fatalf("err = %v", err)
	}
	pool = worker.New(worker.Options{Workers: 1, Command: func() (*exec.Cmd, error) { return exec.Command("/nonexistent/roro"), nil }})
	defer pool.Close()
	_, err = pool.Render(context.Background(), "go", good, &render.Context{})
	if err == nil || !strings.Contains(err.Error(), "start a render worker") {
		t.Fatalf("err = %v", err)
	}
}
