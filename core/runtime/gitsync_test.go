package runtime

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rorokube/roro/core/store"
	"github.com/rorokube/roro/core/workspace"
)

// fakeSyncer counts syncs and answers a divergence.
type fakeSyncer struct{ calls atomic.Int32 }

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
		e := fakeEngine(t, ws, newFakeCluster(), func(o *Options) { o.GitSync = fs })
		time.Sleep(500 * time.Millisecond)
		if n := fs.calls.Load(); n < tt.min || n > tt.max {
			t.Errorf("interval %s: %d background syncs in 0.5 s, want %d to %d", tt.interval, n, tt.min, tt.max)
		}
		if _, err := e.SyncNow(context.Background(), store.SyncOptions{}); err != nil {
			t.Fatal(err)
		}
		s := waitFor(t, e, time.Second, func(s *Snapshot) bool { return s.Git.State == store.SyncDiverged })
		if g := s.Git; g.Ahead != 1 || g.Behind != 1 || g.AheadCommits[0] != "aaaaaaa mine" || g.BehindCommits[0] != "bbbbbbb theirs" || g.At.IsZero() || g.Syncing {
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
				o.GitSync = s
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
