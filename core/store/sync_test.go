package store

import (
	"context"
	"errors"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/internal/testsshd"
)

// shared makes a workspace and an empty bare repository on disk as its remote, origin,
// reached at remoteURL(the bare repository's path).
func shared(t *testing.T, remoteURL func(bare string) string) (*Store, string) {
	t.Helper()
	a := newStore(t)
	bare := filepath.Join(t.TempDir(), "remote.git")
	run(t, "git", "init", "--quiet", "--bare", "--initial-branch=main", bare)
	gitOut(t, a, "remote", "add", "origin", remoteURL(bare))
	return a, bare
}

func workspaceEnv(context string) workspace.Environment {
	return workspace.Environment{Context: context}
}

// setOffline commits sync.offline into the workspace's roro.json.
func setOffline(t *testing.T, s *Store) {
	t.Helper()
	p := filepath.Join(s.Dir(), "roro.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), `"members"`, `"sync": {"offline": true},
  "members"`, 1))
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	gitOut(t, s, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-am", "offline")
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func clone(t *testing.T, bare string) *Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "b")
	run(t, "git", "clone", "--quiet", bare, dir)
	s, err := Open(dir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func subjects(cs []Commit) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Subject)
	}
	return out
}

// TestSyncWithABareRepo: push, fast-forward, a dirty work tree holding a fast-forward back,
// a divergence reported with both sides and never pushed over, a rebase that applies and one
// that conflicts (the repository as it was after it), and sync.offline.
func TestSyncWithABareRepo(t *testing.T) {
	ctx := context.Background()
	a, bare := shared(t, func(bare string) string { return bare })
	st, err := a.Sync(ctx, SyncOptions{Push: true})
	if err != nil || st.State != SyncPushed {
		t.Fatalf("first push: %+v, %v", st, err)
	}
	b := clone(t, bare)

	// a pushes a change; b fast-forwards to it.
	if _, err := a.SetValues("hello", []string{"replicas=2"}, false); err != nil {
		t.Fatal(err)
	}
	if st, err := a.Sync(ctx, SyncOptions{}); err != nil || st.State != SyncAhead || st.Ahead != 1 {
		t.Fatalf("a with push off: %+v, %v", st, err)
	}
	if st, err := a.Sync(ctx, SyncOptions{Push: true}); err != nil || st.State != SyncPushed || st.Ahead != 0 {
		t.Fatalf("a push: %+v, %v", st, err)
	}
	st, err = b.Sync(ctx, SyncOptions{})
	if err != nil || st.State != SyncFastForward || st.Fetched.IsZero() {
		t.Fatalf("b: %+v, %v", st, err)
	}
	if data, _ := os.ReadFile(filepath.Join(b.Dir(), "apps/hello/app.json")); !strings.Contains(string(data), `"replicas": 2`) {
		t.Errorf("b's work tree lacks a's change:\n%s", data)
	}

	// b's uncommitted edit holds the next fast-forward back, and survives.
	if _, err := a.SetValues("hello", []string{"replicas=3"}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx, SyncOptions{Push: true}); err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(b.Dir(), "roro.json")
	data, _ := os.ReadFile(edited)
	mine := strings.Replace(string(data), `"name": "test"`, `"name": "mine"`, 1)
	if err := os.WriteFile(edited, []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err = b.Sync(ctx, SyncOptions{})
	if err != nil || st.State != SyncBehind || st.Behind != 1 || !strings.Contains(st.Message, "roro.json") {
		t.Fatalf("b dirty: %+v, %v", st, err)
	}
	if now, _ := os.ReadFile(edited); string(now) != mine {
		t.Error("a sync lost an uncommitted edit")
	}
	gitOut(t, b, "checkout", "--", "roro.json")
	if st, err := b.Sync(ctx, SyncOptions{}); err != nil || st.State != SyncFastForward {
		t.Fatalf("b clean again: %+v, %v", st, err)
	}

	// Both commit: a to hello, b to roro.json. b sees a divergence with both sides and,
	// asked to push, does not push over a.
	if _, err := a.SetValues("hello", []string{"image=nginx:2"}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx, SyncOptions{Push: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetEnvironment("prod", workspaceEnv("kind-prod")); err != nil {
		t.Fatal(err)
	}
	remoteHead := run(t, "git", "-C", bare, "rev-parse", "main")
	st, err = b.Sync(ctx, SyncOptions{Push: true})
	if err != nil || st.State != SyncDiverged || st.Ahead != 1 || st.Behind != 1 ||
		subjects(st.AheadCommits)[0] != "Set environment prod (context kind-prod)" || subjects(st.BehindCommits)[0] != "Set image=nginx:2 of app hello" {
		t.Fatalf("divergence: %+v, %v", st, err)
	}
	if run(t, "git", "-C", bare, "rev-parse", "main") != remoteHead {
		t.Fatal("a diverged sync pushed")
	}
	// The two touch different files: the rebase applies, and pushes.
	st, err = b.Sync(ctx, SyncOptions{Rebase: true, Push: true})
	if err != nil || st.State != SyncRebased || st.Ahead != 0 || st.Behind != 0 {
		t.Fatalf("rebase: %+v, %v", st, err)
	}
	if log := gitOut(t, b, "log", "--format=%s", "-2"); log != "Set environment prod (context kind-prod)\nSet image=nginx:2 of app hello\n" {
		t.Errorf("after the rebase:\n%s", log)
	}
	if got := run(t, "git", "-C", bare, "rev-parse", "main"); got != gitOut(t, b, "rev-parse", "HEAD") {
		t.Error("the rebased commits were not pushed")
	}

	// Both change the same line: the rebase conflicts and leaves b as it was.
	if _, err := a.Sync(ctx, SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetValues("hello", []string{"replicas=10"}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx, SyncOptions{Push: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetValues("hello", []string{"replicas=20"}, false); err != nil {
		t.Fatal(err)
	}
	before := state(t, b)
	_, err = b.Sync(ctx, SyncOptions{Rebase: true})
	var rc *RebaseConflictError
	if !errors.As(err, &rc) || len(rc.Files) != 1 || rc.Files[0] != "apps/hello/app.json" || !strings.Contains(err.Error(), "the repository is as it was") {
		t.Fatalf("conflicting rebase: %v", err)
	}
	if after := state(t, b); after != before {
		t.Errorf("a failed rebase moved something:\n%s\n---\n%s", before, after)
	}
	gitOut(t, b, "fsck", "--strict")

	// sync.offline: sync does not reach the remote at all.
	setOffline(t, a)
	if _, err := a.Sync(ctx, SyncOptions{}); !errors.As(err, new(*OfflineError)) || !strings.Contains(err.Error(), "sync.offline") {
		t.Errorf("offline workspace: %v", err)
	}
}

// TestSyncOverSSH: against a real OpenSSH sshd on a loopback port, an unknown host key is
// refused with its fingerprint until accepted (a wrong fingerprint accepts nothing), a key
// the server does not know gets git's own refusal, a server that is down is offline, and a
// known key pushes and fetches.
func TestSyncOverSSH(t *testing.T) {
	ctx := context.Background()
	key := testsshd.NewKey(t, "teammate")
	srv := testsshd.Start(t, key)
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	a, bare := shared(t, srv.URL)
	opts := SyncOptions{Push: true, KnownHosts: knownHosts, Env: []string{"GIT_SSH_COMMAND=" + testsshd.SSHCommand(key, knownHosts)}}

	st, err := a.Sync(ctx, opts)
	var hk *HostKeyError
	if !errors.As(err, &hk) || hk.Fingerprint != srv.HostKeyFingerprint || st.State != SyncFailed ||
		!strings.Contains(err.Error(), "roro sync --accept-host-key "+srv.HostKeyFingerprint) {
		t.Fatalf("unknown host: %+v, %v (want the fingerprint %s)", st, err, srv.HostKeyFingerprint)
	}
	if err := a.AcceptHostKey(ctx, opts, "SHA256:AAAAnotthekeyAAAA"); err == nil || !strings.Contains(err.Error(), srv.HostKeyFingerprint) {
		t.Errorf("a wrong fingerprint: %v", err)
	}
	if data, _ := os.ReadFile(knownHosts); len(data) != 0 {
		t.Fatalf("a wrong fingerprint wrote known_hosts:\n%s", data)
	}
	if err := a.AcceptHostKey(ctx, opts, hk.Fingerprint); err != nil {
		t.Fatal(err)
	}
	st, err = a.Sync(ctx, opts)
	if err != nil || st.State != SyncPushed {
		t.Fatalf("push over ssh: %+v, %v\nsshd:\n%s", st, err, srv.Log())
	}
	if got, want := strings.TrimSpace(run(t, "git", "-C", bare, "rev-parse", "main")), strings.TrimSpace(gitOut(t, a, "rev-parse", "HEAD")); got != want {
		t.Errorf("the remote's main is %s, a's HEAD %s", got, want)
	}

	// A key the server does not know.
	stranger := testsshd.NewKey(t, "stranger")
	wrong := opts
	wrong.Env = []string{"GIT_SSH_COMMAND=" + testsshd.SSHCommand(stranger, knownHosts)}
	if _, err := a.Sync(ctx, wrong); err == nil || !strings.Contains(err.Error(), "Permission denied (publickey)") {
		t.Errorf("an unknown key: %v", err)
	}

	// The server is down: offline, and nothing else changes.
	gitOut(t, a, "remote", "set-url", "origin", "ssh://"+srv.User+"@127.0.0.1:1"+bare)
	st, err = a.Sync(ctx, opts)
	if !errors.As(err, new(*OfflineError)) || st.State != SyncOffline {
		t.Errorf("a server that is down: %+v, %v", st, err)
	}
}

// TestSyncOverHTTPS: a remote behind HTTP basic auth (git's own http-backend): the first
// sync has no credentials and is refused with why; one that asks (the user types the token;
// here GIT_ASKPASS answers) works and leaves them in Roro's mode-0600 file; the next sync,
// asking nothing, uses the file.
func TestSyncOverHTTPS(t *testing.T) {
	backend := "/usr/lib/git-core/git-http-backend"
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("no git-http-backend (Debian's git): %v", err)
	}
	const token = "t0ken-for-the-test"
	root := t.TempDir()
	run(t, "git", "init", "--quiet", "--bare", "--initial-branch=main", filepath.Join(root, "remote.git"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || user != "alice" || pass != token {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		(&cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=" + user}}).ServeHTTP(w, r)
	}))
	defer srv.Close()
	a := newStore(t)
	gitOut(t, a, "remote", "add", "origin", srv.URL+"/remote.git")
	creds := filepath.Join(t.TempDir(), "roro", "git-credentials")
	opts := SyncOptions{Push: true, Credentials: creds}
	if _, err := a.Sync(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "run roro sync in a terminal once to type them") {
		t.Fatalf("without credentials: %v", err)
	}
	askpass := filepath.Join(t.TempDir(), "askpass")
	script := "#!/bin/sh\ncase \"$1\" in Username*) echo alice;; *) echo " + token + ";; esac\n"
	if err := os.WriteFile(askpass, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	asked := opts
	asked.Env = []string{"GIT_ASKPASS=" + askpass}
	if st, err := a.Sync(context.Background(), asked); err != nil || st.State != SyncPushed {
		t.Fatalf("with the token typed: %+v %v", st, err)
	}
	info, err := os.Stat(creds)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", info, err)
	}
	if data, _ := os.ReadFile(creds); !strings.Contains(string(data), token) {
		t.Error("the token is not in Roro's credentials file")
	}
	if _, err := a.SetValues("hello", []string{"replicas=2"}, false); err != nil {
		t.Fatal(err)
	}
	if st, err := a.Sync(context.Background(), opts); err != nil || st.State != SyncPushed {
		t.Fatalf("from the stored credentials: %+v %v", st, err)
	}
}
