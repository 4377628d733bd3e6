package workspace

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rorokube/roro/internal/testfs"
)

// watched starts a Watcher on a one-app workspace and returns its folder and what it
// reported, each load or error on the channel as it came.
func watched(t *testing.T) (string, <-chan any) {
	t.Helper()
	dir := t.TempDir()
	testfs.Write(t, dir, map[string]string{
		"roro.json":                 `{"name": "w", "members": ["apps/*"]}`,
		"apps/web/app.json":         `{"manifests": ["manifests/*.yaml"], "values": {"n": 0}}`,
		"apps/web/manifests/m.yaml": "a: b\n",
	})
	got := make(chan any, 1000)
	w := NewWatcher(dir, WatchOptions{
		Loaded: func(ws *Workspace) { got <- ws },
		Failed: func(err error) { got <- err },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-w.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	return dir, got
}

// next waits up to a second for the watcher's next report.
func next(t *testing.T, got <-chan any) any {
	t.Helper()
	select {
	case v := <-got:
		return v
	case <-time.After(time.Second):
		t.Fatal("no reload within a second of the change")
		return nil
	}
}

// none checks that nothing more is reported for half a second.
func none(t *testing.T, got <-chan any) {
	t.Helper()
	select {
	case v := <-got:
		t.Fatalf("one more report: %v", v)
	case <-time.After(500 * time.Millisecond):
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWatchBurst: 100 edits in a burst are one reload, with the last edit's content.
func TestWatchBurst(t *testing.T) {
	dir, got := watched(t)
	app := filepath.Join(dir, "apps/web/app.json")
	for i := 1; i <= 100; i++ {
		write(t, app, fmt.Sprintf(`{"manifests": ["manifests/*.yaml"], "values": {"n": %d}}`, i))
	}
	ws, ok := next(t, got).(*Workspace)
	if !ok || ws.App("web").File.Values["n"] != 100.0 {
		t.Fatalf("reload = %v, want the workspace with n = 100", ws)
	}
	none(t, got)
}

// TestWatchBrokenEdit: an edit that does not load is reported with its place; fixing it
// reloads.
func TestWatchBrokenEdit(t *testing.T) {
	dir, got := watched(t)
	app := filepath.Join(dir, "apps/web/app.json")
	write(t, app, "{\n  \"manifests\": [\"manifests/*.yaml\"],\n  \"valuse\": {}\n}\n")
	err, ok := next(t, got).(error)
	if !ok || !strings.Contains(err.Error(), app+":3:3") || !strings.Contains(err.Error(), `"valuse"`) {
		t.Fatalf("report = %v, want the error at %s:3:3", err, app)
	}
	write(t, app, `{"manifests": ["manifests/*.yaml"], "values": {"n": 7}}`)
	if ws, ok := next(t, got).(*Workspace); !ok || ws.App("web").File.Values["n"] != 7.0 {
		t.Fatalf("after the fix: %v", ws)
	}
}

// TestWatchRenameSave: editors that save to a new file and rename it over the old one (vim,
// most IDEs), a new app folder, and a removed one are all seen; .git is not watched.
func TestWatchRenameSave(t *testing.T) {
	dir, got := watched(t)
	app := filepath.Join(dir, "apps/web/app.json")
	tmp := filepath.Join(dir, "apps/web/.app.json.tmp")
	write(t, tmp, `{"manifests": ["manifests/*.yaml"], "values": {"n": 42}}`)
	if err := os.Rename(tmp, app); err != nil {
		t.Fatal(err)
	}
	if ws, ok := next(t, got).(*Workspace); !ok || ws.App("web").File.Values["n"] != 42.0 {
		t.Fatalf("after a rename save: %v", ws)
	}
	testfs.Write(t, filepath.Join(dir, "apps/db"), map[string]string{"app.json": `{"manifests": ["m/*.yaml"]}`, "m/x.yaml": "a: b\n"})
	if ws, ok := next(t, got).(*Workspace); !ok || ws.App("db") == nil {
		t.Fatalf("a new app: %v", ws)
	}
	// An edit inside the new app's new folder is seen too.
	write(t, filepath.Join(dir, "apps/db/app.json"), `{"manifests": ["m/*.yaml"], "group": "data"}`)
	if ws, ok := next(t, got).(*Workspace); !ok || ws.App("db").File.Group != "data" {
		t.Fatalf("an edit in the new app: %v", ws)
	}
	if err := os.RemoveAll(filepath.Join(dir, "apps/db")); err != nil {
		t.Fatal(err)
	}
	if ws, ok := next(t, got).(*Workspace); !ok || ws.App("db") != nil {
		t.Fatalf("a removed app: %v", ws)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".git/objects"), 0o755); err != nil {
		t.Fatal(err)
	}
	none(t, got) // what git does in .git is not a change of the workspace
}
