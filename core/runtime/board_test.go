package runtime

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rorokube/roro/forward"
)

// TestBoard: a board is read while its process lives, filtered by workspace; the files a
// dead process left (its lock no longer held, as after SIGKILL) are removed, not shown; Close
// removes the board.
func TestBoard(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenBoard(dir, "/ws/a", "roro forward")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	view := ForwardView{App: "api", Instance: "default", Status: forward.Status{Target: "service/api", State: forward.Connected, Pod: "api-1",
		Ports: []forward.Port{{Local: 8080, Remote: "http", Resolved: 80}}}}
	if err := b.Publish([]ForwardView{view}); err != nil {
		t.Fatal(err)
	}
	other, err := OpenBoard(dir, "/ws/b", "the window")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// A process that died: its files are there, nobody holds the lock.
	for name, data := range map[string]string{"999999-1.lock": "", "999999-1.json": `{"pid":999999,"workspace":"/ws/a","forwards":[{"app":"ghost"}]}`} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadBoards(dir, "/ws/a")
	if err != nil || len(got) != 1 || got[0].PID != os.Getpid() || got[0].Command != "roro forward" || len(got[0].Forwards) != 1 {
		t.Fatalf("boards of /ws/a: %+v %v", got, err)
	}
	if f := got[0].Forwards[0]; f.App != "api" || f.State != forward.Connected || f.Pod != "api-1" || f.Ports[0].Resolved != 80 {
		t.Errorf("forward on the board: %+v", f)
	}
	if _, err := os.Stat(filepath.Join(dir, "999999-1.json")); !os.IsNotExist(err) {
		t.Errorf("the dead process's board is left: %v", err)
	}
	// Counters alone change nothing on the board: no write.
	before, _ := os.Stat(filepath.Join(dir, b.base+".json"))
	view.BytesIn = 100
	if err := b.Publish([]ForwardView{view}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(filepath.Join(dir, b.base+".json"))
	if !os.SameFile(before, after) {
		t.Error("a change of counters rewrote the board")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got, _ := ReadBoards(dir, "/ws/a"); len(got) != 0 {
		t.Errorf("a closed board is read: %+v", got)
	}
	if got, _ := ReadBoards(dir, "/ws/b"); len(got) != 1 || got[0].Command != "the window" {
		t.Errorf("boards of /ws/b: %+v", got)
	}
}
