package gitserve

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rorokube/roro/internal/testsshd"
)

// served is a running server over one workspace, "demo", with a writer and a reader key.
type served struct {
	srv            *Server
	dir            string // the served workspace
	settings       *Settings
	writer, reader testsshd.Key
	knownHosts     string
	log            *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func serve(t *testing.T, mods ...func(*Options)) *served {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	opts, root := demoOptions(t)
	dir, settings := opts.Repos["demo"], opts.Settings
	sv := &served{dir: dir, settings: settings, writer: testsshd.NewKey(t, "writer"), reader: testsshd.NewKey(t, "reader"), log: &lockedBuffer{}}
	for key, role := range map[testsshd.Key]string{sv.writer: RoleWrite, sv.reader: RoleRead} {
		line, err := os.ReadFile(key.Public)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := settings.Add(string(line), role); err != nil {
			t.Fatal(err)
		}
	}
	opts.Log = slog.New(slog.NewTextHandler(sv.log, nil))
	for _, m := range mods {
		m(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	sv.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	<-srv.Ready()
	sv.knownHosts = filepath.Join(root, "known_hosts")
	writeKnownHosts(t, sv)
	return sv
}

// writeKnownHosts trusts the server's host key in sv.knownHosts.
func writeKnownHosts(t *testing.T, sv *served) {
	t.Helper()
	host, port, _ := net.SplitHostPort(sv.srv.Addr())
	line := fmt.Sprintf("[%s]:%s %s", host, port, gossh.MarshalAuthorizedKey(sv.srv.HostKey()))
	if err := os.WriteFile(sv.knownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
}

// url is the clone URL of a served name.
func (sv *served) url(name string) string { return "ssh://git@" + sv.srv.Addr() + "/" + name }

// git runs the real git client as key, in dir, and returns its combined output and error.
func (sv *served) git(key testsshd.Key, dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+testsshd.SSHCommand(key, sv.knownHosts),
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (sv *served) mustGit(t *testing.T, key testsshd.Key, dir string, args ...string) string {
	t.Helper()
	out, err := sv.git(key, dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, sv.log.String())
	}
	return out
}

// ssh runs the real ssh client as key against the server.
func (sv *served) ssh(key testsshd.Key, extra ...string) (string, error) {
	host, port, _ := net.SplitHostPort(sv.srv.Addr())
	args := append([]string{"-F", "/dev/null", "-i", key.Private, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + sv.knownHosts,
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", port, "git@" + host}, extra...)
	out, err := exec.Command("ssh", args...).CombinedOutput()
	return string(out), err
}

// fingerprint of a key file pair.
func fingerprint(t *testing.T, k testsshd.Key) string {
	t.Helper()
	b, err := os.ReadFile(k.Public)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := gossh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return gossh.FingerprintSHA256(pub)
}

// refs lists the served repository's refs, to check a refused request moved none.
func (sv *served) refs(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", sv.dir, "show-ref").CombinedOutput()
	if err != nil && len(out) > 0 {
		t.Fatal(err, string(out))
	}
	return string(out)
}

func (sv *served) fsck(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("git", "-C", sv.dir, "fsck", "--strict").CombinedOutput(); err != nil {
		t.Fatalf("git fsck --strict: %v\n%s", err, out)
	}
}

// TestInterop: the real git client, over protocol v2 and v0, clones (whole and shallow),
// fetches 200 new commits, pushes to the checked-out branch (the work tree follows), pushes
// and deletes a branch, pushes a tag; a non-fast-forward push is refused, forced or not.
func TestInterop(t *testing.T) {
	sv := serve(t)
	work := t.TempDir()
	for _, v := range []string{"2", "0"} {
		clone := filepath.Join(work, "v"+v)
		sv.mustGit(t, sv.reader, work, "-c", "protocol.version="+v, "clone", "--quiet", sv.url("demo"), clone)
		if _, err := os.Stat(filepath.Join(clone, "apps/hello/app.json")); err != nil {
			t.Fatalf("protocol v%s clone: %v", v, err)
		}
	}
	if !strings.Contains(sv.log.String(), "git-upload-pack") {
		t.Error("the server log has no clone")
	}
	shallow := filepath.Join(work, "shallow")
	sv.mustGit(t, sv.reader, work, "clone", "--quiet", "--depth", "1", sv.url("demo.git"), shallow)
	if n := strings.TrimSpace(sv.mustGit(t, sv.reader, shallow, "rev-list", "--count", "HEAD")); n != "1" {
		t.Errorf("shallow clone has %s commits", n)
	}

	// 200 commits on the server, then a fetch.
	script := `for i in $(seq 200); do echo $i > notes.txt; git add notes.txt; git -c user.name=o -c user.email=o@o commit -qm "note $i"; done`
	if out, err := exec.Command("sh", "-c", "cd "+sv.dir+" && "+script).CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	v2 := filepath.Join(work, "v2")
	sv.mustGit(t, sv.reader, v2, "pull", "--quiet", "--ff-only")
	if a, b := sv.mustGit(t, sv.reader, v2, "rev-parse", "HEAD"), gitIn(t, sv.dir, "rev-parse", "HEAD"); a != b {
		t.Fatalf("after the fetch of 200 commits: %s, server %s", a, b)
	}

	// A writer clones, commits and pushes main: the server's work tree follows.
	w := filepath.Join(work, "writer")
	sv.mustGit(t, sv.writer, work, "clone", "--quiet", sv.url("demo"), w)
	writeFile(t, filepath.Join(w, "notes.txt"), "from the writer\n")
	sv.mustGit(t, sv.writer, w, "commit", "-qam", "writer's note")
	sv.mustGit(t, sv.writer, w, "push", "--quiet", "origin", "main")
	if b, _ := os.ReadFile(filepath.Join(sv.dir, "notes.txt")); string(b) != "from the writer\n" {
		t.Errorf("the server's work tree did not follow the push: %q", b)
	}
	if st := gitIn(t, sv.dir, "status", "--porcelain"); st != "" {
		t.Errorf("the server's work tree is not clean after the push:\n%s", st)
	}
	// A branch, its deletion, a tag.
	sv.mustGit(t, sv.writer, w, "push", "--quiet", "origin", "main:feature")
	if !strings.Contains(sv.refs(t), "refs/heads/feature") {
		t.Error("the new branch is not on the server")
	}
	sv.mustGit(t, sv.writer, w, "push", "--quiet", "origin", ":feature")
	if strings.Contains(sv.refs(t), "refs/heads/feature") {
		t.Error("the deleted branch is still on the server")
	}
	sv.mustGit(t, sv.writer, w, "tag", "v1")
	sv.mustGit(t, sv.writer, w, "push", "--quiet", "origin", "v1")
	if !strings.Contains(sv.refs(t), "refs/tags/v1") {
		t.Error("the tag is not on the server")
	}
	// History rewritten: refused, forced or not.
	before := sv.refs(t)
	sv.mustGit(t, sv.writer, w, "reset", "--quiet", "--hard", "HEAD~1")
	sv.mustGit(t, sv.writer, w, "commit", "--quiet", "--allow-empty", "-m", "rewritten")
	for _, force := range [][]string{nil, {"--force"}} {
		out, err := sv.git(sv.writer, w, append([]string{"push", "origin", "main"}, force...)...)
		if err == nil || !(strings.Contains(out, "non-fast-forward") || strings.Contains(out, "denying non-fast-forward")) {
			t.Errorf("push %v of a rewritten main: %v\n%s", force, err, out)
		}
	}
	if sv.refs(t) != before {
		t.Error("a refused push moved a ref")
	}
	sv.fsck(t)
}

// TestPushChecks: a push that does not load as a workspace is refused with the located
// error; a push while the served work tree has edits is refused saying why, and the edits
// stay; neither moves a ref.
func TestPushChecks(t *testing.T) {
	sv := serve(t)
	w := filepath.Join(t.TempDir(), "w")
	sv.mustGit(t, sv.writer, filepath.Dir(w), "clone", "--quiet", sv.url("demo"), w)
	before := sv.refs(t)
	writeFile(t, filepath.Join(w, "apps/hello/app.json"), "{\n  \"manifests\": [\"manifests/*.yaml\"],\n  \"replicas\": 3\n}\n")
	sv.mustGit(t, sv.writer, w, "commit", "-qam", "broken")
	out, err := sv.git(sv.writer, w, "push", "origin", "main")
	if err == nil || !strings.Contains(out, "does not load as a workspace, so the push is refused") || !strings.Contains(out, "apps/hello/app.json:3:3") {
		t.Errorf("a push that does not load: %v\n%s", err, out)
	}
	if sv.refs(t) != before {
		t.Fatal("a refused push moved a ref")
	}
	// Fixed, but the server's owner has an edit in progress.
	sv.mustGit(t, sv.writer, w, "reset", "--quiet", "--hard", "origin/main")
	writeFile(t, filepath.Join(w, "notes.txt"), "new\n")
	sv.mustGit(t, sv.writer, w, "add", "notes.txt")
	sv.mustGit(t, sv.writer, w, "commit", "-qm", "a note")
	mine := filepath.Join(sv.dir, "roro.json")
	data, _ := os.ReadFile(mine)
	edited := strings.Replace(string(data), `"name": "demo"`, `"name": "demo-wip"`, 1)
	writeFile(t, mine, edited)
	out, err = sv.git(sv.writer, w, "push", "origin", "main")
	if err == nil || !strings.Contains(out, "Working directory has unstaged changes") {
		t.Errorf("a push onto a dirty work tree: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(mine); string(b) != edited || sv.refs(t) != before {
		t.Error("a refused push lost the owner's edit or moved a ref")
	}
	sv.fsck(t)
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}
