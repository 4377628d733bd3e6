package runtime

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rorokube/roro/core/store"
	"github.com/rorokube/roro/core/workspace"
)

// fakeSyncer counts syncs and answers a divergence.
type fakeSyncer struct {
	Repo  // the rest is not called
	calls atomic.Int32
}

func (f *fakeSyncer) Sync(context.Context, store.SyncOptions) (store.SyncState, error) {
	f.calls.Add(1)
	return store.SyncState{State: store.SyncDiverged, Remote: "origin", Branch: "main", Ahead: 1, Behind: 1, Message: "diverged",
		AheadCommits:  []store.Commit{{Hash: "aaaaaaaaaa", Subject: "mine"}},
		BehindCommits: []store.Commit{{Hash: "bbbbbbbbbb", Subject: "theirs"}}}, nil
}

// TestSyncInTheSnapshot: SyncNow publishes where the workspace stands, both sides' commits
// included; the background loop syncs every sync.interval, and not at all with "0".
func TestSyncInTheSnapshot(t *testing.T) {
	for _, tt := range []struct {
		interval string
		min, max int32
	}{{"100ms", 3, 100}, {"0", 0, 0}} {
		ws := fakeWorkspace(t, map[string]string{"a": `{"manifests": ["m.yaml"]}`})
		ws.File.Sync = &workspace.Sync{Interval: tt.interval}
		fs := &fakeSyncer{}
		e := fakeEngine(t, ws, newFakeCluster(), func(o *Options) { o.Repo = fs })
		time.Sleep(500 * time.Millisecond)
		if n := fs.calls.Load(); n < tt.min || n > tt.max {
			t.Errorf("interval %s: %d background syncs in 0.5 s, want %d to %d", tt.interval, n, tt.min, tt.max)
		}
		if _, err := e.SyncNow(context.Background(), store.SyncOptions{}); err != nil {
			t.Fatal(err)
		}
		// With a 100 ms interval a background sync may be running at any moment: wait for a
		// snapshot between two.
		s := waitFor(t, e, time.Second, func(s *Snapshot) bool { return s.Git.State == store.SyncDiverged && !s.Git.Syncing })
		if g := s.Git; g.Ahead != 1 || g.Behind != 1 || g.AheadCommits[0] != "aaaaaaa mine" || g.BehindCommits[0] != "bbbbbbb theirs" || g.At.IsZero() {
			t.Errorf("git view %+v", g)
		}
	}
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSyncLoopIdle measures the CPU an idle engine uses with the background git sync on
// (a real workspace repository, the default 5-minute interval) and off, each for 5 s, order
// alternated, as CPU milliseconds a minute.
func BenchmarkSyncLoopIdle(b *testing.B) {
	b.Setenv("HOME", b.TempDir())
	dir := filepath.Join(b.TempDir(), "ws")
	if err := store.InitWorkspace(dir, "idle", time.Now()); err != nil {
		b.Fatal(err)
	}
	ws, err := workspace.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	s, err := store.Open(dir, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	measure := func(sync bool) time.Duration {
		e := fakeEngine(b, ws, newFakeCluster(), func(o *Options) {
			if sync {
				o.Repo = s
			}
		})
		time.Sleep(200 * time.Millisecond) // settle: connections made, first snapshot out
		start := cpuTime(b)
		time.Sleep(5 * time.Second)
		used := cpuTime(b) - start
		_ = e.Close()
		return used * 12 // a minute
	}
	var on, off time.Duration
	for i := range b.N {
		if i%2 == 0 {
			on += measure(true)
			off += measure(false)
		} else {
			off += measure(false)
			on += measure(true)
		}
	}
	b.ReportMetric(float64(on.Milliseconds())/float64(b.N), "cpu-ms/min-sync-on")
	b.ReportMetric(float64(off.Milliseconds())/float64(b.N), "cpu-ms/min-sync-off")
}

// TestEngineChangesCommit: a change through the engine is one commit and is loaded at once
// (no file watcher needed); history and revert go through the repository; a bad change is
// refused and the workspace stays.
func TestEngineChangesCommit(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dir := filepath.Join(t.TempDir(), "ws")
	if err := store.InitWorkspace(dir, "w", time.Now()); err != nil {
		t.Fatal(err)
	}
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := store.Open(dir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	e := fakeEngine(t, ws, newFakeCluster(), func(o *Options) { o.Repo = repo })
	c, err := e.SetValues("hello", []string{"replicas=3"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if v := e.Workspace().App("hello").File.Values["replicas"]; v != 3.0 {
		t.Errorf("after SetValues the engine has replicas %v", v)
	}
	if _, err := e.AddInstance("hello", "pr-1", workspace.Instance{Environment: "staging"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, e, time.Second, func(s *Snapshot) bool {
		a := s.App("hello")
		return a != nil && len(a.Instances) >= 2
	})
	if _, err := e.AddInstance("hello", "pr-1", workspace.Instance{}); err == nil {
		t.Error("a clashing instance was added")
	}
	hist, err := e.History("hello", 0)
	if err != nil || len(hist) != 3 || hist[1].Hash != c.Hash {
		t.Fatalf("history %v, %v", hist, err)
	}
	if _, patch, err := e.Show(c.Hash); err != nil || !strings.Contains(patch, `"replicas": 3`) {
		t.Errorf("show: %v\n%s", err, patch)
	}
	if _, err := e.Revert(hist[0].Hash); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Workspace().App("hello").File.Instances["pr-1"]; ok {
		t.Error("the revert is not loaded")
	}
}
