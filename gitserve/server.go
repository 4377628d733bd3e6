package gitserve

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// DefaultAddr is where the server listens unless told otherwise: this machine only.
// Listening beyond loopback is the user's explicit choice.
const DefaultAddr = "127.0.0.1:2222"

// Options configure a Server; zero fields take the defaults.
type Options struct {
	// Addr is the TCP address to listen on (default DefaultAddr).
	Addr string
	// HostKey is the file of the server's ed25519 host key, made (mode 0600) when missing.
	HostKey string
	// Settings hold the keys, their roles, and the refused keys.
	Settings *Settings
	// Repos are the served workspaces: the name a clone URL uses → the workspace's folder.
	Repos map[string]string
	// Log receives connections, pushes and refusals (default: discarded).
	Log *slog.Logger
	// Executable is what the pre-receive hook runs (default: this executable).
	Executable string
	// MaxSessions bounds the git commands running at once (default 32).
	MaxSessions int
	// MaxUnauthenticated bounds connections that have not logged in yet (default 256): past
	// it, the oldest is closed. Each costs a goroutine and a descriptor, nothing a login
	// waits for: idle connections cannot lock teammates out, only use memory, and this
	// bounds that.
	MaxUnauthenticated int
	// LoginTimeout closes a connection that has not logged in within it (default 10 s).
	LoginTimeout time.Duration
	// IdleTimeout closes a connection silent for that long (default 5 min).
	IdleTimeout time.Duration
	// MaxPush bounds a push's pack (default 256 MiB).
	MaxPush int64
	// Refused, when set, is called after a refused key is recorded (the tray shows it).
	Refused func()
}

// Server is the SSH git server. New prepares it, Run serves until its context ends, Ready
// is closed once it listens, Close stops it.
type Server struct {
	opts   Options
	log    *slog.Logger
	hooks  string
	signer gossh.Signer
	srv    *ssh.Server
	slots  chan struct{}
	ready  chan struct{}

	// pushes serializes the pushes to each workspace: two receive-packs updating one work
	// tree at once could leave it matching neither.
	pushes sync.Map // name → *sync.Mutex

	mu      sync.Mutex
	addr    string
	ln      net.Listener   // Run's, closed by Close
	pending []*trackedConn // connections not logged in yet, oldest first
	closed  bool
}

// extFingerprint carries, in the permissions x/crypto keeps for each offered key, that
// key's fingerprint: the permissions of the key that really authenticated are the
// connection's, whatever other keys the client offered before or after (gliderlabs/ssh#242).
const extFingerprint = "roro-key-fingerprint"

// repoName is what a served workspace may be called in a clone URL.
var repoName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// New checks opts (git must be installed: the server runs git's own upload-pack and
// receive-pack), loads or makes the host key, and writes the pre-receive hook.
func New(opts Options) (*Server, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return nil, errors.New("git is not installed: Roro's git server runs git's own upload-pack and receive-pack (Debian: apt-get install git)")
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.Settings == nil {
		return nil, errors.New("gitserve: no Settings")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = 32
	}
	if opts.MaxUnauthenticated <= 0 {
		opts.MaxUnauthenticated = 256
	}
	if opts.LoginTimeout <= 0 {
		opts.LoginTimeout = 10 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 5 * time.Minute
	}
	if opts.MaxPush <= 0 {
		opts.MaxPush = 256 << 20
	}
	if opts.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opts.Executable = exe
	}
	if len(opts.Repos) == 0 {
		return nil, errors.New("gitserve: no workspace to serve")
	}
	for name, dir := range opts.Repos {
		if !repoName.MatchString(name) {
			return nil, fmt.Errorf("%q cannot name a served workspace: use lower-case letters, digits, '.', '_' and '-'", name)
		}
		if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
			return nil, fmt.Errorf("workspace %s (%s) is not a git repository: roro init makes one, or run git init there", name, dir)
		}
	}
	signer, err := hostKey(opts.HostKey)
	if err != nil {
		return nil, err
	}
	hooks, err := os.MkdirTemp("", "roro-serve-hooks-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(hooks, "pre-receive"), []byte(hookScript(opts.Executable)), 0o700); err != nil {
		os.RemoveAll(hooks)
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Log, hooks: hooks, signer: signer,
		slots: make(chan struct{}, opts.MaxSessions), ready: make(chan struct{})}
	s.srv = &ssh.Server{
		Addr:             opts.Addr,
		Handler:          s.session,
		HostSigners:      []ssh.Signer{signer},
		Version:          "Roro",
		PublicKeyHandler: s.publicKey,
		// No password or keyboard-interactive handler: only keys. No pty, no forwarding
		// callbacks (denied), no subsystems.
		PtyCallback:  func(ssh.Context, ssh.Pty) bool { return false },
		ConnCallback: s.track,
		ConnectionFailedCallback: func(c net.Conn, err error) {
			s.log.Info("connection ended before login", "remote", c.RemoteAddr().String(), "err", err)
		},
		IdleTimeout: opts.IdleTimeout,
	}
	return s, nil
}

// HostKeyFingerprint is the server's host key fingerprint, for teammates to check.
func (s *Server) HostKeyFingerprint() string { return gossh.FingerprintSHA256(s.signer.PublicKey()) }

// HostKey is the server's public host key.
func (s *Server) HostKey() gossh.PublicKey { return s.signer.PublicKey() }

// Ready is closed once the server listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on, once Ready.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Run listens and serves until ctx ends or Close.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.opts.Addr, err)
	}
	s.mu.Lock()
	s.addr, s.ln = ln.Addr().String(), ln
	if s.closed { // closed before it listened
		_ = ln.Close()
	}
	s.mu.Unlock()
	close(s.ready)
	s.log.Info("serving", "addr", s.addr, "workspaces", strings.Join(s.names(), ","), "hostkey", s.HostKeyFingerprint())
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	defer stop()
	err = s.srv.Serve(ln)
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || errors.Is(err, ssh.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops listening and ends every connection. It is idempotent. It closes Run's listener
// itself: gliderlabs/ssh closes only the listeners Serve has registered, so a Close that came
// before Serve registered it would leave Serve in Accept for ever.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ln := s.ln
	s.mu.Unlock()
	err := s.srv.Close()
	if ln != nil {
		_ = ln.Close()
	}
	os.RemoveAll(s.hooks)
	return err
}

func (s *Server) names() []string {
	var out []string
	for n := range s.opts.Repos {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// trackedConn is a connection, with the keys it offered that were refused and whether it
// has logged in.
type trackedConn struct {
	net.Conn
	s        *Server
	remote   string
	once     sync.Once
	mu       sync.Mutex
	loggedIn bool
	refused  []gossh.PublicKey
	timer    *time.Timer
}

type connKey struct{}

// track registers a new connection: it must log in within LoginTimeout, and when too many
// have not logged in yet the oldest of them is closed.
func (s *Server) track(ctx ssh.Context, c net.Conn) net.Conn {
	tc := &trackedConn{Conn: c, s: s, remote: c.RemoteAddr().String()}
	ctx.SetValue(connKey{}, tc)
	tc.timer = time.AfterFunc(s.opts.LoginTimeout, func() {
		tc.mu.Lock()
		in := tc.loggedIn
		tc.mu.Unlock()
		if !in {
			s.log.Info("closed a connection that did not log in in time", "remote", tc.remote)
			tc.Close()
		}
	})
	var evict *trackedConn
	s.mu.Lock()
	s.pending = append(s.pending, tc)
	if len(s.pending) > s.opts.MaxUnauthenticated {
		evict = s.pending[0]
	}
	s.mu.Unlock()
	if evict != nil {
		s.log.Warn("closed a connection that had not logged in, to make room", "remote", evict.remote)
		evict.Close()
	}
	s.log.Info("connection", "remote", tc.remote)
	return tc
}

// loggedIn marks the connection as logged in: it no longer counts against the bound.
func (tc *trackedConn) markLoggedIn() {
	tc.mu.Lock()
	tc.loggedIn = true
	tc.mu.Unlock()
	tc.s.forget(tc)
}

func (s *Server) forget(tc *trackedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.pending {
		if p == tc {
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			return
		}
	}
}

// Close closes the connection once; a connection that never logged in records the keys it
// was refused with, for the owner to approve.
func (tc *trackedConn) Close() error {
	err := tc.Conn.Close()
	tc.once.Do(func() {
		tc.timer.Stop()
		tc.s.forget(tc)
		tc.mu.Lock()
		in, refused := tc.loggedIn, tc.refused
		tc.mu.Unlock()
		if in {
			return
		}
		for _, k := range refused {
			fp := gossh.FingerprintSHA256(k)
			tc.s.log.Warn("refused key", "remote", tc.remote, "key", fp)
			if err := tc.s.opts.Settings.Refuse(k, tc.remote); err != nil {
				tc.s.log.Error("record a refused key", "key", fp, "err", err)
			}
		}
		if len(refused) > 0 && tc.s.opts.Refused != nil {
			tc.s.opts.Refused()
		}
	})
	return err
}

// publicKey accepts a key that has a role. Each key gets permissions of its own holding its
// fingerprint; see extFingerprint.
func (s *Server) publicKey(ctx ssh.Context, key ssh.PublicKey) bool {
	fp := gossh.FingerprintSHA256(key)
	ctx.SetValue(ssh.ContextKeyPermissions, &ssh.Permissions{Permissions: &gossh.Permissions{Extensions: map[string]string{extFingerprint: fp}}})
	if s.opts.Settings.Role(fp) != "" {
		return true
	}
	if tc, ok := ctx.Value(connKey{}).(*trackedConn); ok {
		tc.mu.Lock()
		if len(tc.refused) < 8 {
			tc.refused = append(tc.refused, key)
		}
		tc.mu.Unlock()
	}
	return false
}

// authenticated is the fingerprint of the key the connection really logged in with.
func authenticated(sess ssh.Session) (string, bool) {
	conn, ok := sess.Context().Value(ssh.ContextKeyConn).(*gossh.ServerConn)
	if !ok || conn.Permissions == nil {
		return "", false
	}
	fp := conn.Permissions.Extensions[extFingerprint]
	// The key gliderlabs/ssh hands the session is the last one accepted, which need not be
	// the one that signed: trust the connection's, and refuse when they differ.
	if fp == "" || sess.PublicKey() == nil || gossh.FingerprintSHA256(sess.PublicKey()) != fp {
		return fp, false
	}
	return fp, true
}

// refuse ends a session with a message for the user and a failing exit status.
func (s *Server) refuse(sess ssh.Session, msg string, attrs ...any) {
	s.log.Warn("refused", append([]any{"remote", sess.RemoteAddr().String(), "reason", msg}, attrs...)...)
	fmt.Fprintf(sess.Stderr(), "roro: %s\n", msg)
	_ = sess.Exit(1)
}

// gitProtocol is the only variable a client may set: git's protocol version.
var gitProtocol = regexp.MustCompile(`^GIT_PROTOCOL=version=[0-9]$`)

// session runs one git command for a logged-in key.
func (s *Server) session(sess ssh.Session) {
	if tc, ok := sess.Context().Value(connKey{}).(*trackedConn); ok {
		tc.markLoggedIn()
	}
	fp, ok := authenticated(sess)
	if !ok {
		s.refuse(sess, "the key this connection logged in with is not the one it presents: refused", "key", fp)
		return
	}
	role := s.opts.Settings.Role(fp)
	if role == "" {
		s.refuse(sess, "this key is no longer authorized", "key", fp)
		return
	}
	args := sess.Command()
	usage := "this is Roro's git server: it runs git only (git clone ssh://HOST:PORT/" + strings.Join(s.names(), "|") + ")"
	if _, _, pty := sess.Pty(); pty || len(args) == 0 {
		s.refuse(sess, "no shell or terminal here; "+usage, "key", fp)
		return
	}
	if len(args) != 2 || (args[0] != "git-upload-pack" && args[0] != "git-receive-pack") {
		s.refuse(sess, fmt.Sprintf("%q is not a git command Roro runs; %s", sess.RawCommand(), usage), "key", fp)
		return
	}
	name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(args[1], "/"), "~/"), "/"), ".git")
	dir, served := s.opts.Repos[name]
	if !served || !repoName.MatchString(name) {
		s.refuse(sess, fmt.Sprintf("no workspace %q is served here (served: %s)", args[1], strings.Join(s.names(), ", ")), "key", fp)
		return
	}
	push := args[0] == "git-receive-pack"
	if push && role != RoleWrite {
		s.refuse(sess, fmt.Sprintf("key %s may read, not push: the owner grants writes with roro serve approve %s --role write", fp, fp), "key", fp, "workspace", name)
		return
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		s.refuse(sess, "the server is busy: try again in a moment", "key", fp)
		return
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, kv := range sess.Environ() {
		if gitProtocol.MatchString(kv) {
			env = append(env, kv)
		} else {
			name, _, _ := strings.Cut(kv, "=")
			s.log.Warn("ignored an environment variable the client sent", "remote", sess.RemoteAddr().String(), "name", name)
		}
	}
	var gitArgs []string
	if push {
		gitArgs = []string{
			"-c", "receive.denyCurrentBranch=updateInstead", // the work tree follows, when clean
			"-c", "receive.denyNonFastForwards=true",
			"-c", "receive.fsckObjects=true",
			"-c", "receive.maxInputSize=" + strconv.FormatInt(s.opts.MaxPush, 10),
			"-c", "core.hooksPath=" + s.hooks,
			"receive-pack", dir}
	} else {
		gitArgs = []string{"upload-pack", "--strict", filepath.Join(dir, ".git")}
	}
	if push {
		m, _ := s.pushes.LoadOrStore(name, &sync.Mutex{})
		m.(*sync.Mutex).Lock()
		defer m.(*sync.Mutex).Unlock()
	}
	start := time.Now()
	cmd := exec.CommandContext(sess.Context(), "git", gitArgs...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = sess, sess.Stderr()
	// Not cmd.Stdin = sess: Wait would wait for the client to close its side, and a git
	// client waits for the exit status first. The copy ends with the session.
	stdin, err := cmd.StdinPipe()
	if err == nil {
		go func() {
			_, _ = io.Copy(stdin, sess)
			stdin.Close()
		}()
		err = cmd.Run()
	}
	code := 0
	if err != nil {
		code = 1
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			code = ee.ExitCode()
		}
	}
	s.log.Info(args[0], "remote", sess.RemoteAddr().String(), "key", fp, "role", role, "workspace", name, "exit", code, "took", time.Since(start).Round(time.Millisecond))
	_ = sess.Exit(code)
}

// hostKey reads the ed25519 host key at path, or makes one there (mode 0600).
func hostKey(path string) (gossh.Signer, error) {
	if path == "" {
		return nil, errors.New("gitserve: no host key path")
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		block, err := gossh.MarshalPrivateKey(priv, "roro serve host key")
		if err != nil {
			return nil, err
		}
		data = pem.EncodeToMemory(block)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("read the host key: %w", err)
	}
	if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %o): chmod 600 it", path, info.Mode().Perm())
	}
	signer, err := gossh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return signer, nil
}
