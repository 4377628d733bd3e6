package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rorokube/roro/forward"
)

// Board shares the forwards this process runs with the other roro processes of the same
// user, so `roro ps -o wide` can say which forwards run and how they stand, whichever roro
// (the window, `roro forward`, `roro run`) runs them. Each board is one file, named by its
// process's pid, and the process holds a lock on a companion file for as long as it lives: readers skip (and
// remove) the files of a process that is gone, however it ended, so the board never shows a
// forward that no process runs.
type Board struct {
	dir, base string
	lock      *os.File

	mu     sync.Mutex
	file   BoardFile
	last   []byte
	closed bool
}

// BoardFile is what one process publishes: who it is and the forwards it runs.
type BoardFile struct {
	PID int `json:"pid"`
	// Command says which roro runs them: "roro forward", "roro run", "the window".
	Command string `json:"command"`
	// Workspace is the folder of the workspace whose forwards these are.
	Workspace string         `json:"workspace"`
	Forwards  []BoardForward `json:"forwards"`
}

// BoardForward is one forward on the board: its instance, its ports and its state, without
// the counters (they change too often to be worth a write).
type BoardForward struct {
	App       string         `json:"app"`
	Instance  string         `json:"instance"`
	Target    string         `json:"target,omitempty"`
	Namespace string         `json:"namespace,omitempty"`
	Address   string         `json:"address,omitempty"`
	Ports     []forward.Port `json:"ports,omitempty"`
	State     forward.State  `json:"state,omitempty"`
	Pod       string         `json:"pod,omitempty"`
	Reason    string         `json:"reason,omitempty"`
	Since     time.Time      `json:"since,omitzero"`
	// Err is why the instance's forwards could not start (a local port in use).
	Err string `json:"err,omitempty"`
}

// BoardDir is where boards live: $XDG_RUNTIME_DIR/roro/forwards (memory, private to the
// user), else forwards under stateDir.
func BoardDir(stateDir string) string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "roro", "forwards")
	}
	return filepath.Join(stateDir, "forwards")
}

// OpenBoard starts this process's board in dir for the workspace at wsDir; command says
// which roro this is. Close removes it.
func OpenBoard(dir, wsDir, command string) (*Board, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("forward board: %w", err)
	}
	pid := os.Getpid()
	// Lock under a temporary name, then rename: a reader never finds the lock file unlocked
	// while its process lives.
	tmp, err := os.CreateTemp(dir, ".lock-*")
	if err != nil {
		return nil, fmt.Errorf("forward board: %w", err)
	}
	if err := syscall.Flock(int(tmp.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("forward board: lock %s: %w", tmp.Name(), err)
	}
	// Named by pid and the temporary name's random part: one process may hold several boards.
	base := strconv.Itoa(pid) + "-" + strings.TrimPrefix(filepath.Base(tmp.Name()), ".lock-")
	if err := os.Rename(tmp.Name(), filepath.Join(dir, base+".lock")); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("forward board: %w", err)
	}
	b := &Board{dir: dir, base: base, lock: tmp, file: BoardFile{PID: pid, Command: command, Workspace: wsDir, Forwards: []BoardForward{}}}
	if err := b.write(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Publish writes the forwards of views when they changed since the last write.
func (b *Board) Publish(views []ForwardView) error {
	if b == nil {
		return nil
	}
	fws := make([]BoardForward, 0, len(views))
	for _, v := range views {
		fws = append(fws, BoardForward{App: v.App, Instance: v.Instance, Target: v.Target, Namespace: v.Namespace,
			Address: v.Address, Ports: v.Ports, State: v.State, Pod: v.Pod, Reason: v.Reason, Since: v.Since, Err: v.Err})
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.file.Forwards = fws
	return b.writeLocked()
}

func (b *Board) write() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.writeLocked()
}

// writeLocked writes the file by temporary file and rename, so a reader sees the old content
// or the new, never half; no fsync: the board is about this boot only.
func (b *Board) writeLocked() error {
	data, err := json.Marshal(b.file)
	if err != nil {
		return err
	}
	if slices.Equal(data, b.last) {
		return nil
	}
	tmp, err := os.CreateTemp(b.dir, ".board-*")
	if err != nil {
		return fmt.Errorf("forward board: %w", err)
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), filepath.Join(b.dir, b.base+".json"))
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("forward board: %w", werr)
	}
	b.last = data
	return nil
}

// Close removes the board's files and releases its lock. Calling it again does nothing.
func (b *Board) Close() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	err := os.Remove(filepath.Join(b.dir, b.base+".json"))
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	os.Remove(filepath.Join(b.dir, b.base+".lock"))
	b.lock.Close() // releases the lock
	return err
}

// ReadBoards returns the boards in dir of the live processes that run forwards of the
// workspace at wsDir, by pid. The files of processes that are gone are removed.
func ReadBoards(dir, wsDir string) ([]BoardFile, error) {
	locks, err := filepath.Glob(filepath.Join(dir, "*.lock"))
	if err != nil {
		return nil, err
	}
	var out []BoardFile
	for _, l := range locks {
		base := strings.TrimSuffix(filepath.Base(l), ".lock")
		if strings.HasPrefix(base, ".") {
			continue // a lock being made
		}
		if !held(l) {
			os.Remove(filepath.Join(dir, base+".json"))
			os.Remove(l)
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, base+".json"))
		if err != nil {
			continue // between its lock and its first write
		}
		var f BoardFile
		if json.Unmarshal(data, &f) != nil || f.Workspace != wsDir {
			continue
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b BoardFile) int { return a.PID - b.PID })
	return out, nil
}

// held reports whether a live process holds the lock on path.
func held(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
