package gitserve

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rorokube/roro/core/store"
	"github.com/rorokube/roro/internal/testsshd"
)

// TestSwitch: the window's switch turns the server on (it listens, a known key clones) and
// off (nothing listens), and on again; a refused key calls changed, and Approve lets it in.
func TestSwitch(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	opts, root := demoOptions(t)
	dir, settings := opts.Repos["demo"], opts.Settings
	var changes atomic.Int32
	w := NewSwitch(opts, func() { changes.Add(1) })
	defer w.Stop()
	if srv, _ := w.Server(); srv != nil {
		t.Fatal("a new switch is on")
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	srv, _ := w.Server()
	if srv == nil {
		t.Fatal("started, but no server")
	}
	addr := srv.Addr()
	sv := &served{srv: srv, dir: dir, settings: settings, knownHosts: filepath.Join(root, "known_hosts"), log: &lockedBuffer{}}
	writeKnownHosts(t, sv)
	key := testsshd.NewKey(t, "carol")
	work := t.TempDir()
	if _, err := sv.git(key, work, "clone", "--quiet", sv.url("demo"), filepath.Join(work, "a")); err == nil {
		t.Fatal("an unknown key cloned")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(settings.RefusedKeys()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	before := changes.Load()
	if err := w.Approve(fingerprint(t, key), RoleRead); err != nil {
		t.Fatal(err)
	}
	if changes.Load() <= before || before < 2 { // on, the refusal, the approval
		t.Errorf("changed called %d times before the approval, %d after", before, changes.Load())
	}
	sv.mustGit(t, key, work, "clone", "--quiet", sv.url("demo"), filepath.Join(work, "b"))
	w.Stop()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("something still listens after Stop")
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	if srv, _ := w.Server(); srv == nil || srv.HostKeyFingerprint() != sv.srv.HostKeyFingerprint() {
		t.Error("the server came back with another host key")
	}
}

// TestStopRightAfterStart: a server stopped as soon as it is ready (the switch turned off at
// once) ends, however its stop and its first Accept interleave. gliderlabs/ssh closes only the
// listeners Serve has registered, so a stop that came before Serve registered ours left it in
// Accept for ever (seen as TestSwitch's deferred Stop hanging).
func TestStopRightAfterStart(t *testing.T) {
	opts, _ := demoOptions(t)
	for i := range 300 {
		srv, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ended := make(chan error, 1)
		go func() { ended <- srv.Run(ctx) }()
		<-srv.Ready()
		cancel() // as Switch.Stop right after Start
		select {
		case err := <-ended:
			if err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Run did not end within 5 s of a stop right after it was ready", i)
		}
	}
}

// demoOptions are a server's options for one new workspace, demo, with empty settings, on a
// free port, logging nothing; root is the temporary folder that holds them all.
func demoOptions(t *testing.T) (opts Options, root string) {
	t.Helper()
	root = t.TempDir()
	dir := filepath.Join(root, "demo")
	if err := store.InitWorkspace(dir, "demo", time.Now()); err != nil {
		t.Fatal(err)
	}
	settings, err := OpenSettings(filepath.Join(root, "serve.json"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return Options{Addr: "127.0.0.1:0", HostKey: filepath.Join(root, "host"), Settings: settings,
		Repos: map[string]string{"demo": dir}, Log: slog.New(slog.DiscardHandler)}, root
}
