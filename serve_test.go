package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testsshd"
)

// TestServeCommand: roro serve on a new workspace, a key added with a role, the real git
// client clones and pushes over it, an unknown key is listed as refused and approved; Ctrl-C
// ends the server.
func TestServeCommand(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", "")
	dir := filepath.Join(t.TempDir(), "team")
	if code, _, errOut := runCLI(t, "init", dir); code != exitOK {
		t.Fatal(errOut)
	}
	key, stranger := testsshd.NewKey(t, "alice"), testsshd.NewKey(t, "bob")
	if code, out, errOut := runCLI(t, "serve", "keys", "add", key.Public, "--role", "write"); code != exitOK || !strings.HasPrefix(out, "write  SHA256:") {
		t.Fatalf("keys add: %d %s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "serve", "keys", "add", key.Public); code != exitUsage || !strings.Contains(errOut, `give --role read`) {
		t.Errorf("keys add without --role: %d %s", code, errOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut lockedBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"-w", dir, "serve", "--addr", "127.0.0.1:0"}, &out, &errOut) }()
	var cloneURL string
	if err := testcluster.Poll(testcluster.Context(t, 10*time.Second), 20*time.Millisecond, func() (bool, error) {
		m := regexp.MustCompile(`git clone (ssh://\S+)`).FindStringSubmatch(out.String())
		if m != nil {
			cloneURL = m[1]
		}
		return m != nil, nil
	}); err != nil {
		t.Fatalf("serve did not say where: %s%s", out.String(), errOut.String())
	}
	// known_hosts from the host key roro made in its config folder.
	home, _ := os.UserHomeDir()
	pem, err := os.ReadFile(filepath.Join(home, ".config/roro/ssh_host_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	hostPort := strings.TrimPrefix(strings.TrimSuffix(cloneURL, "/team"), "ssh://")
	host, port, _ := net.SplitHostPort(hostPort)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(fmt.Sprintf("[%s]:%s %s", host, port, gossh.MarshalAuthorizedKey(signer.PublicKey()))), 0o600); err != nil {
		t.Fatal(err)
	}
	git := func(k testsshd.Key, dir string, args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+testsshd.SSHCommand(k, kh), "GIT_AUTHOR_NAME=a", "GIT_AUTHOR_EMAIL=a@a", "GIT_COMMITTER_NAME=a", "GIT_COMMITTER_EMAIL=a@a")
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	work := t.TempDir()
	clone := filepath.Join(work, "team")
	if o, err := git(key, work, "clone", "--quiet", cloneURL, clone); err != nil {
		t.Fatalf("clone: %v\n%s\n%s", err, o, errOut.String())
	}
	if code, _, e := runCLI(t, "-w", clone, "set", "hello", "replicas=4"); code != exitOK {
		t.Fatal(e)
	}
	if o, err := git(key, clone, "push", "--quiet", "origin", "main"); err != nil {
		t.Fatalf("push: %v\n%s", err, o)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "apps/hello/app.json")); !strings.Contains(string(b), `"replicas": 4`) {
		t.Errorf("the served work tree did not follow the push:\n%s", b)
	}
	if o, err := git(stranger, work, "clone", "--quiet", cloneURL, filepath.Join(work, "bob")); err == nil {
		t.Fatalf("an unknown key cloned: %s", o)
	}
	_, listed, _ := runCLI(t, "serve", "keys")
	m := regexp.MustCompile(`(SHA256:\S+)  from 127\.0\.0\.1`).FindStringSubmatch(listed)
	if m == nil {
		t.Fatalf("serve keys does not list bob as refused:\n%s", listed)
	}
	if code, o, e := runCLI(t, "serve", "approve", m[1], "--role", "read"); code != exitOK || !strings.Contains(o, "approved") {
		t.Fatalf("approve: %d %s%s", code, o, e)
	}
	if o, err := git(stranger, work, "clone", "--quiet", cloneURL, filepath.Join(work, "bob")); err != nil {
		t.Fatalf("bob after approval: %v\n%s", err, o)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("serve ended with %d: %s", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not end on Ctrl-C")
	}
}
