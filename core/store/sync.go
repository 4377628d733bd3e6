package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rorokube/roro/core/workspace"
)

// Sync follows a git remote with the real git client, so that authentication is git's own:
// ssh-agent and key files (a passphrase is asked on a terminal), ~/.ssh/known_hosts,
// ~/.ssh/config, HTTPS credential helpers. It never force-pushes and never discards a local
// commit or edit.

// SyncOptions say how one sync runs.
type SyncOptions struct {
	// Remote and Branch name what to follow; empty: roro.json's sync settings, else origin
	// and the branch checked out.
	Remote, Branch string
	// Push pushes local commits that fast-forward the remote (also when roro.json says
	// sync.push).
	Push bool
	// Rebase replays local commits on the remote's when the two have diverged, if they
	// apply cleanly; otherwise the repository is left as it was.
	Rebase bool
	// Interactive lets git and ssh ask on the terminal (a key's passphrase); a background
	// sync never asks.
	Interactive bool
	// KnownHosts is the file unknown host keys are accepted into (default
	// ~/.ssh/known_hosts, the one ssh reads).
	KnownHosts string
	// Credentials is the file (mode 0600) where HTTPS credentials are kept when git has no
	// credential helper configured (default: Roro's config folder, git-credentials). With
	// a helper configured (a keyring's, for example), git uses it alone.
	Credentials string
	// Env is added to git's environment (tests point GIT_SSH_COMMAND at their server).
	Env []string

	// creds are git's -c options for credentials, worked out once a sync.
	creds []string
}

// Sync states, as SyncState.State says them.
const (
	SyncUpToDate     = "up to date"
	SyncFastForward  = "fast-forwarded"
	SyncPushed       = "pushed"
	SyncRebased      = "rebased"
	SyncAhead        = "ahead"    // local commits not pushed (push is off)
	SyncBehind       = "behind"   // remote commits not taken (the work tree has edits)
	SyncDiverged     = "diverged" // both have commits the other lacks
	SyncOffline      = "offline"  // the remote cannot be reached, or the workspace says offline
	SyncFailed       = "failed"
	SyncNotFollowing = "no remote"
)

// SyncState is where the workspace stands against its remote after a sync.
type SyncState struct {
	State          string
	Remote, Branch string
	// Ahead and Behind count the commits each side has that the other lacks; AheadCommits
	// and BehindCommits are those commits, newest first.
	Ahead, Behind               int
	AheadCommits, BehindCommits []Commit
	// Fetched is when the remote was last read.
	Fetched time.Time
	// Message says what happened, or what to do.
	Message string
}

// HostKeyError is a remote whose SSH host key is not in known_hosts: Roro shows its
// fingerprint and goes no further until the user accepts it.
type HostKeyError struct {
	Host        string // host or [host]:port, as known_hosts writes it
	Fingerprint string // SHA256:…
	KeyType     string
}

func (e *HostKeyError) Error() string {
	return fmt.Sprintf("the SSH host key of %s is not known: its fingerprint is %s (%s). If that is your server's key, accept it with: roro sync --accept-host-key %s",
		e.Host, e.Fingerprint, e.KeyType, e.Fingerprint)
}

// OfflineError is a remote that cannot be reached now; everything but sync still works.
type OfflineError struct{ Reason string }

func (e *OfflineError) Error() string {
	return "the remote cannot be reached, so nothing was synced (everything else works offline): " + e.Reason
}

// git runs the git client in the workspace with opts' environment.
func (s *Store) git(ctx context.Context, opts SyncOptions, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append(append([]string{"-C", s.dir}, opts.creds...), args...)...)
	cmd.Env = append(os.Environ(), opts.Env...)
	if !opts.Interactive {
		cmd.Env = append(cmd.Env, "GIT_TERMINAL_PROMPT=0", "GIT_SSH_VARIANT=ssh")
		if os.Getenv("GIT_SSH_COMMAND") == "" && !hasEnv(opts.Env, "GIT_SSH_COMMAND") {
			cmd.Env = append(cmd.Env, "GIT_SSH_COMMAND=ssh -o BatchMode=yes")
		}
	} else {
		cmd.Stdin = os.Stdin
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errOut.String())
		if msg == "" {
			msg = err.Error()
		}
		return out.String(), &gitError{args: args, msg: msg}
	}
	return out.String(), nil
}

// credentialArgs gives git a credential store when it has no helper of its own: the
// keyring's (git-credential-libsecret) when installed, else a mode-0600 file.
func (s *Store) credentialArgs(ctx context.Context, opts SyncOptions) []string {
	cmd := exec.CommandContext(ctx, "git", "-C", s.dir, "config", "--get-all", "credential.helper")
	cmd.Env = append(os.Environ(), opts.Env...)
	if out, err := cmd.Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		return nil // the user's helpers, alone: never copy their secrets elsewhere
	}
	if _, err := exec.LookPath("git-credential-libsecret"); err == nil {
		return []string{"-c", "credential.helper=libsecret"}
	}
	path := opts.Credentials
	if path == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return nil
		}
		path = filepath.Join(dir, "roro", "git-credentials")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil
	}
	// git-credential-store writes the file mode 0600.
	return []string{"-c", "credential.helper=store --file=" + path}
}

// gitError is a git command that failed, with what git said.
type gitError struct {
	args []string
	msg  string
}

func (e *gitError) Error() string { return fmt.Sprintf("git %s: %s", strings.Join(e.args, " "), e.msg) }

func hasEnv(env []string, name string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, name+"=") {
			return true
		}
	}
	return false
}

// target works out the remote and branch a sync follows.
func (s *Store) target(ctx context.Context, opts *SyncOptions) (*workspace.Sync, error) {
	settings := &workspace.Sync{}
	if ws, err := workspace.Load(s.dir); err == nil && ws.File.Sync != nil {
		settings = ws.File.Sync
	}
	if opts.Remote == "" {
		opts.Remote = settings.Remote
	}
	if opts.Remote == "" {
		opts.Remote = "origin"
	}
	if opts.Branch == "" {
		opts.Branch = settings.Branch
	}
	if opts.Branch == "" {
		head, err := s.git(ctx, *opts, "symbolic-ref", "--short", "HEAD")
		if err != nil {
			return nil, errors.New("HEAD is not on a branch (a detached checkout): check out the branch to sync, or set sync.branch in roro.json")
		}
		opts.Branch = strings.TrimSpace(head)
	}
	opts.Push = opts.Push || settings.Push
	if _, err := s.git(ctx, *opts, "remote", "get-url", opts.Remote); err != nil {
		return nil, fmt.Errorf("the workspace has no git remote %q to sync with: add one (git -C %s remote add %s URL) or set sync.remote in roro.json",
			opts.Remote, s.dir, opts.Remote)
	}
	return settings, nil
}

// Sync fetches the remote branch, then fast-forwards when the work tree allows it, pushes
// when asked, and reports a divergence with both sides (or, with Rebase, replays local
// commits when they apply cleanly). A failed rebase leaves the repository as it was.
func (s *Store) Sync(ctx context.Context, opts SyncOptions) (SyncState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	opts.creds = s.credentialArgs(ctx, opts)
	settings, err := s.target(ctx, &opts)
	st := SyncState{Remote: opts.Remote, Branch: opts.Branch}
	if err != nil {
		st.State, st.Message = SyncNotFollowing, err.Error()
		return st, err
	}
	if settings.Offline {
		err := &OfflineError{Reason: "roro.json says sync.offline"}
		st.State, st.Message = SyncOffline, err.Error()
		return st, err
	}
	remoteRef := "refs/remotes/" + opts.Remote + "/" + opts.Branch
	if _, err := s.git(ctx, opts, "fetch", "--no-tags", opts.Remote, "+refs/heads/"+opts.Branch+":"+remoteRef); err != nil {
		if strings.Contains(err.Error(), "couldn't find remote ref") {
			return s.firstPush(ctx, opts, st)
		}
		err = s.explainFetch(ctx, opts, err)
		st.State, st.Message = SyncFailed, err.Error()
		var off *OfflineError
		if errors.As(err, &off) {
			st.State = SyncOffline
		}
		return st, err
	}
	st.Fetched = s.now()
	if err := s.sides(ctx, opts, remoteRef, &st); err != nil {
		st.State, st.Message = SyncFailed, err.Error()
		return st, err
	}
	switch {
	case st.Ahead == 0 && st.Behind == 0:
		st.State, st.Message = SyncUpToDate, "the workspace and "+opts.Remote+"/"+opts.Branch+" are the same"
	case st.Ahead == 0:
		if dirty, err := s.dirtyFiles(ctx, opts); err != nil || len(dirty) > 0 {
			st.State = SyncBehind
			st.Message = fmt.Sprintf("%d commits on %s/%s not taken: the work tree has edits not committed (%s); commit or discard them, then sync",
				st.Behind, opts.Remote, opts.Branch, strings.Join(dirty, ", "))
			return st, err
		}
		if _, err := s.git(ctx, opts, "merge", "--ff-only", "--quiet", remoteRef); err != nil {
			st.State, st.Message = SyncFailed, err.Error()
			return st, err
		}
		st.State, st.Message = SyncFastForward, fmt.Sprintf("took %d commits from %s/%s", st.Behind, opts.Remote, opts.Branch)
		st.Behind, st.BehindCommits = 0, nil
	case st.Behind == 0:
		if !opts.Push {
			st.State, st.Message = SyncAhead, fmt.Sprintf("%d local commits not pushed: push them with roro sync --push (or set sync.push)", st.Ahead)
			return st, nil
		}
		if err := s.push(ctx, opts, &st); err != nil {
			return st, err
		}
	default:
		if !opts.Rebase {
			st.State = SyncDiverged
			st.Message = fmt.Sprintf("the workspace and %s/%s have diverged: %d local commits, %d remote ones. Roro does not merge on its own: roro sync --rebase replays the local ones on the remote's when they apply cleanly",
				opts.Remote, opts.Branch, st.Ahead, st.Behind)
			return st, nil
		}
		if err := s.rebase(ctx, opts, remoteRef, &st); err != nil {
			return st, err
		}
		if opts.Push {
			if err := s.push(ctx, opts, &st); err != nil {
				return st, err
			}
		}
	}
	return st, nil
}

// firstPush handles a remote that has no such branch yet: with push on, the branch is
// created with every local commit; without, the commits wait.
func (s *Store) firstPush(ctx context.Context, opts SyncOptions, st SyncState) (SyncState, error) {
	st.Fetched = s.now()
	out, err := s.git(ctx, opts, "rev-list", "--count", "HEAD")
	if err != nil {
		st.State, st.Message = SyncFailed, err.Error()
		return st, err
	}
	fmt.Sscan(out, &st.Ahead)
	if !opts.Push {
		st.State, st.Message = SyncAhead, fmt.Sprintf("%s has no branch %s yet: roro sync --push creates it with the %d local commits", opts.Remote, opts.Branch, st.Ahead)
		return st, nil
	}
	err = s.push(ctx, opts, &st)
	return st, err
}

// sides counts and lists the commits each side has that the other lacks.
func (s *Store) sides(ctx context.Context, opts SyncOptions, remoteRef string, st *SyncState) error {
	out, err := s.git(ctx, opts, "rev-list", "--left-right", "HEAD..."+remoteRef)
	if err != nil {
		return err
	}
	st.Ahead, st.Behind, st.AheadCommits, st.BehindCommits = 0, 0, nil, nil
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if len(line) < 2 {
			continue
		}
		c, err := s.commitOfRev(ctx, opts, line[1:])
		if err != nil {
			return err
		}
		if line[0] == '<' {
			st.Ahead++
			st.AheadCommits = append(st.AheadCommits, c)
		} else {
			st.Behind++
			st.BehindCommits = append(st.BehindCommits, c)
		}
	}
	return nil
}

// commitOfRev describes a commit git names (fetched objects go-git may not have indexed).
func (s *Store) commitOfRev(ctx context.Context, opts SyncOptions, rev string) (Commit, error) {
	out, err := s.git(ctx, opts, "log", "-1", "--format=%H%x00%an <%ae>%x00%aI%x00%s", rev)
	if err != nil {
		return Commit{}, err
	}
	f := strings.SplitN(strings.TrimSpace(out), "\x00", 4)
	if len(f) != 4 {
		return Commit{}, fmt.Errorf("git log %s: unexpected output", rev)
	}
	when, _ := time.Parse(time.RFC3339, f[2])
	return Commit{Hash: f[0], Author: f[1], When: when, Subject: f[3], Message: f[3]}, nil
}

// dirtyFiles lists tracked files with edits not committed.
func (s *Store) dirtyFiles(ctx context.Context, opts SyncOptions) ([]string, error) {
	out, err := s.git(ctx, opts, "status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return nil, err
	}
	var files []string
	for line := range strings.SplitSeq(strings.TrimRight(out, "\n"), "\n") {
		if len(line) > 3 {
			files = append(files, line[3:])
		}
	}
	return files, nil
}

// push pushes HEAD to the remote branch, never forced: a remote that moved meanwhile
// refuses it, and the next sync reports the divergence.
func (s *Store) push(ctx context.Context, opts SyncOptions, st *SyncState) error {
	if _, err := s.git(ctx, opts, "push", "--quiet", opts.Remote, "HEAD:refs/heads/"+opts.Branch); err != nil {
		st.State, st.Message = SyncFailed, err.Error()
		return err
	}
	if st.State != SyncRebased {
		st.State, st.Message = SyncPushed, ""
	}
	st.Message = strings.TrimSpace(fmt.Sprintf("%s pushed %d commits to %s/%s", st.Message, st.Ahead, opts.Remote, opts.Branch))
	st.Ahead, st.AheadCommits = 0, nil
	return nil
}

// rebase replays local commits on the remote's. When they do not apply cleanly it aborts,
// leaving HEAD, the index and the work tree as they were, and names the conflicting files.
func (s *Store) rebase(ctx context.Context, opts SyncOptions, remoteRef string, st *SyncState) error {
	if dirty, err := s.dirtyFiles(ctx, opts); err != nil || len(dirty) > 0 {
		st.State = SyncDiverged
		st.Message = "not rebased: the work tree has edits not committed (" + strings.Join(dirty, ", ") + "); commit or discard them first"
		if err == nil {
			err = errors.New(st.Message)
		}
		return err
	}
	before, err := s.git(ctx, opts, "rev-parse", "HEAD")
	if err != nil {
		return err
	}
	if _, err := s.git(ctx, opts, "-c", "user.name=roro", "-c", "user.email=roro@localhost", "rebase", "--quiet", remoteRef); err != nil {
		conflicts, _ := s.git(ctx, opts, "diff", "--name-only", "--diff-filter=U")
		if _, abortErr := s.git(ctx, opts, "rebase", "--abort"); abortErr != nil {
			return fmt.Errorf("the rebase failed and could not be undone (%v); the repository is mid-rebase: git -C %s rebase --abort", abortErr, s.dir)
		}
		if after, _ := s.git(ctx, opts, "rev-parse", "HEAD"); after != before {
			return fmt.Errorf("the rebase failed and HEAD moved from %s to %s: check git -C %s reflog", strings.TrimSpace(before), strings.TrimSpace(after), s.dir)
		}
		files := strings.Fields(conflicts)
		st.State = SyncDiverged
		st.Message = fmt.Sprintf("not rebased: local commits conflict with %s/%s in %s; the repository is as it was. Resolve by hand (git rebase %s/%s)",
			opts.Remote, opts.Branch, strings.Join(files, ", "), opts.Remote, opts.Branch)
		return &RebaseConflictError{Files: files, msg: st.Message}
	}
	st.State, st.Message = SyncRebased, fmt.Sprintf("replayed %d local commits on %d from %s/%s.", st.Ahead, st.Behind, opts.Remote, opts.Branch)
	st.Behind, st.BehindCommits = 0, nil
	return nil
}

// RebaseConflictError is a rebase refused because local commits conflict with the remote's.
type RebaseConflictError struct {
	Files []string
	msg   string
}

func (e *RebaseConflictError) Error() string { return e.msg }

// offlineSigns are what git and ssh say when the remote cannot be reached at all.
var offlineSigns = []string{"Could not resolve host", "Connection refused", "Network is unreachable", "No route to host",
	"Connection timed out", "Operation timed out", "Could not read from remote repository", "Connection closed by", "Temporary failure in name resolution"}

// explainFetch turns a failed fetch into what the user can act on: an unknown host key
// (with its fingerprint), a remote out of reach, or git's own message.
func (s *Store) explainFetch(ctx context.Context, opts SyncOptions, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "Host key verification failed") {
		if hk := s.unknownHostKey(ctx, opts); hk != nil {
			return hk
		}
		return fmt.Errorf("the remote's SSH host key is not in known_hosts, and Roro could not read it to show its fingerprint: %w", err)
	}
	if strings.Contains(msg, "Permission denied") || strings.Contains(msg, "Authentication failed") {
		return fmt.Errorf("the remote refused Roro's credentials (git uses your ssh-agent, ~/.ssh keys and credential helpers): %w", err)
	}
	if strings.Contains(msg, "could not read Username") || strings.Contains(msg, "could not read Password") {
		return fmt.Errorf("the remote asks for credentials and none are stored: run roro sync in a terminal once to type them (a token, for HTTPS), and Roro keeps them for the next syncs: %w", err)
	}
	for _, sign := range offlineSigns {
		if strings.Contains(msg, sign) {
			return &OfflineError{Reason: lastLine(msg)}
		}
	}
	return err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[0])
}

// sshEndpoint is the host and port of an SSH remote URL (ssh://user@host:port/path or
// user@host:path), or ok false for other transports.
func sshEndpoint(remote string) (host, port string, ok bool) {
	if strings.HasPrefix(remote, "ssh://") || strings.HasPrefix(remote, "git+ssh://") {
		u, err := url.Parse(remote)
		if err != nil {
			return "", "", false
		}
		port = u.Port()
		if port == "" {
			port = "22"
		}
		return u.Hostname(), port, true
	}
	if strings.Contains(remote, "://") {
		return "", "", false
	}
	userHost, _, found := strings.Cut(remote, ":")
	if !found || strings.ContainsRune(userHost, '/') {
		return "", "", false // a local path
	}
	_, h, hasUser := strings.Cut(userHost, "@")
	if !hasUser {
		h = userHost
	}
	return h, "22", true
}

// scanHostKeys reads the remote's host keys with ssh-keyscan, as known_hosts lines.
func (s *Store) scanHostKeys(ctx context.Context, opts SyncOptions) ([]string, error) {
	remote, err := s.git(ctx, opts, "remote", "get-url", opts.Remote)
	if err != nil {
		return nil, err
	}
	host, port, ok := sshEndpoint(strings.TrimSpace(remote))
	if !ok {
		return nil, fmt.Errorf("remote %s is not an SSH remote", opts.Remote)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ssh-keyscan", "-p", port, "-t", "ed25519,ecdsa,rsa", host).Output()
	if err != nil && len(out) == 0 {
		return nil, fmt.Errorf("ssh-keyscan %s:%s: %w", host, port, err)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// keyOf parses a known_hosts line into its host field and key.
func keyOf(line string) (string, ssh.PublicKey, bool) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return "", nil, false
	}
	raw, err := base64.StdEncoding.DecodeString(f[2])
	if err != nil {
		return "", nil, false
	}
	key, err := ssh.ParsePublicKey(raw)
	if err != nil {
		return "", nil, false
	}
	return f[0], key, true
}

// unknownHostKey describes the remote's preferred host key for the user to check.
func (s *Store) unknownHostKey(ctx context.Context, opts SyncOptions) *HostKeyError {
	lines, err := s.scanHostKeys(ctx, opts)
	if err != nil {
		return nil
	}
	for _, l := range lines {
		if host, key, ok := keyOf(l); ok {
			return &HostKeyError{Host: host, Fingerprint: ssh.FingerprintSHA256(key), KeyType: key.Type()}
		}
	}
	return nil
}

// AcceptHostKey adds the remote's host key whose fingerprint is fingerprint to known_hosts,
// after reading the key from the server again and checking that it has that fingerprint.
func (s *Store) AcceptHostKey(ctx context.Context, opts SyncOptions, fingerprint string) error {
	if _, err := s.target(ctx, &opts); err != nil {
		return err
	}
	lines, err := s.scanHostKeys(ctx, opts)
	if err != nil {
		return err
	}
	var seen []string
	for _, l := range lines {
		_, key, ok := keyOf(l)
		if !ok {
			continue
		}
		fp := ssh.FingerprintSHA256(key)
		if fp != fingerprint {
			seen = append(seen, fp)
			continue
		}
		path := opts.KnownHosts
		if path == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return err
			}
			path = filepath.Join(home, ".ssh", "known_hosts")
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintln(f, l); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return fmt.Errorf("the remote's host keys have the fingerprints %s, not %s: nothing was accepted (is this the server you meant?)",
		strings.Join(seen, ", "), fingerprint)
}
