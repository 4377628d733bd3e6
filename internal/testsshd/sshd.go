// Package testsshd starts a real OpenSSH sshd for a test, on a loopback port, with its own
// host key and authorized_keys, and the ssh command line a client (git) uses to reach it.
package testsshd

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rorokube/roro/internal/testport"
)

// Server is one sshd.
type Server struct {
	// Host and Port are where it listens (127.0.0.1 and a port reserved for the test).
	Host string
	Port int
	// User is who logs in: the user running the test.
	User string
	// HostKeyFingerprint is the SHA256 fingerprint of its ed25519 host key.
	HostKeyFingerprint string
	// HostKeyLine is its host key as a known_hosts line.
	HostKeyLine string
	dir         string
}

// Key is a client key pair in a test's folder.
type Key struct {
	Private, Public string // file paths
}

// NewKey makes an ed25519 key pair without a passphrase.
func NewKey(t testing.TB, name string) Key {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p)
	return Key{Private: p, Public: p + ".pub"}
}

// Start runs sshd until the test ends, letting in the given keys.
func Start(t testing.TB, keys ...Key) *Server {
	t.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
	}
	if _, err := os.Stat(sshd); err != nil {
		t.Fatalf("no sshd (Debian's openssh-server; ci/deps installs it): %v", err)
	}
	// sshd refuses to start without its privilege separation folder.
	_ = os.MkdirAll("/run/sshd", 0o755)
	dir := t.TempDir()
	hostKey := filepath.Join(dir, "host_ed25519")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test-host", "-f", hostKey)
	var auth strings.Builder
	for _, k := range keys {
		b, err := os.ReadFile(k.Public)
		if err != nil {
			t.Fatal(err)
		}
		auth.Write(b)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(auth.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	port := testport.Reserve(t).Number // sshd listens with SO_REUSEADDR, so it can bind the reservation
	cfg := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile %s
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowTcpForwarding no
X11Forwarding no
LogLevel VERBOSE
MaxStartups 100:30:200
MaxSessions 100
`, port, hostKey, filepath.Join(dir, "authorized_keys"), filepath.Join(dir, "sshd.pid"))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	logf, err := os.Create(filepath.Join(dir, "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
			t.Fatalf("sshd did not listen on %s: %s", addr, log)
		}
	}
	fp := strings.Fields(run(t, "ssh-keygen", "-l", "-E", "sha256", "-f", hostKey+".pub"))[1]
	pub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pub))
	return &Server{Host: "127.0.0.1", Port: port, User: u.Username, HostKeyFingerprint: fp,
		HostKeyLine: fmt.Sprintf("[127.0.0.1]:%d %s %s", port, f[0], f[1]), dir: dir}
}

// URL is the ssh:// URL of path on the server.
func (s *Server) URL(path string) string {
	return fmt.Sprintf("ssh://%s@%s:%d%s", s.User, s.Host, s.Port, path)
}

// SSHCommand is the ssh command line (for GIT_SSH_COMMAND) that logs in with key and
// checks host keys against knownHosts only, asking nothing.
func SSHCommand(key Key, knownHosts string) string {
	return fmt.Sprintf("ssh -F /dev/null -i %s -o IdentitiesOnly=yes -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes",
		key.Private, knownHosts)
}

// Log is what sshd has logged so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "sshd.log"))
	return string(b)
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
