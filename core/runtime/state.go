// Package runtime orchestrates roro's explicit lifecycle across apps and instances (up, down,
// ps), keeps the local state cache, and publishes one observable snapshot for the CLI, the
// window and the tray. It never draws.
package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/rorokube/roro/core/store"
)

// StateDir returns roro's state folder: $XDG_STATE_HOME/roro, or ~/.local/state/roro.
func StateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "roro"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the state folder: %w", err)
	}
	return filepath.Join(home, ".local", "state", "roro"), nil
}

// Deployed is one instance roro has applied: where, and under which ApplySet.
type Deployed struct {
	App         string    `json:"app"`
	Instance    string    `json:"instance"`
	Environment string    `json:"environment"`
	Context     string    `json:"context"`
	Namespace   string    `json:"namespace"`
	ApplySetID  string    `json:"applySetID"`
	Objects     int       `json:"objects"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// State is the local cache of what runs where. It is never the truth: the cluster's labels
// are, and State is rebuilt from them when it is lost or stale.
type State struct {
	Workspace string     `json:"workspace"`
	Deployed  []Deployed `json:"deployed"`
}

// Store keeps a workspace's State in one JSON file, written atomically.
type Store struct {
	path string
	mu   sync.Mutex
}

// NewStore returns the store of the workspace at wsDir, under dir (StateDir in the CLI).
func NewStore(dir, wsDir string) *Store {
	sum := sha256.Sum256([]byte(wsDir))
	return &Store{path: filepath.Join(dir, "workspaces", hex.EncodeToString(sum[:8])+".json")}
}

// Load reads the state; a missing or unreadable file is an empty state (it is a cache).
func (s *Store) Load() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.load()
}

func (s *Store) load() State {
	var st State
	data, err := os.ReadFile(s.path)
	if err != nil {
		return st
	}
	if json.Unmarshal(data, &st) != nil {
		return State{}
	}
	return st
}

// CorruptStateError says the state file did not parse. Update moved it aside to Aside and
// started again from an empty state, so the cache must be rebuilt from the cluster's labels.
type CorruptStateError struct {
	Path, Aside string
	Err         error
}

func (e *CorruptStateError) Error() string {
	return fmt.Sprintf("the local state file %s was corrupt (%v): kept as %s, and rebuilt from the cluster", e.Path, e.Err, e.Aside)
}

func (e *CorruptStateError) Unwrap() error { return e.Err }

// Update applies fn to the state and writes the result atomically: a temporary file,
// fsync, rename, fsync of the folder. Updates apply one after another, from many goroutines
// and from many roro processes alike (an flock on a lock file beside the state). A state
// file that does not parse is moved aside and fn applies to an empty state; the update is
// written, and Update returns a *CorruptStateError to say so.
func (s *Store) Update(fn func(*State)) error {
	s.mu.Lock() // across read, change and write: parallel updates never lose one another
	defer s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("state folder: %w", err)
	}
	lock, err := os.OpenFile(s.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock the state: %w", err)
	}
	defer lock.Close() // releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock the state: %w", err)
	}
	var corrupt *CorruptStateError
	var st State
	if data, err := os.ReadFile(s.path); err == nil {
		if jerr := json.Unmarshal(data, &st); jerr != nil {
			st = State{}
			corrupt = &CorruptStateError{Path: s.path, Aside: s.path + ".corrupt", Err: jerr}
			if err := os.Rename(s.path, corrupt.Aside); err != nil {
				return fmt.Errorf("move the corrupt state aside: %w", err)
			}
		}
	}
	fn(&st)
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := store.WriteFileAtomic(s.path, append(data, '\n'), 0o600); err != nil {
		return err
	}
	if corrupt != nil {
		return corrupt
	}
	return nil
}

// Remember records the workspace's folder in its state file when the file does not have it
// yet, so `roro ls` knows the workspace; it writes nothing when the file already names it,
// nor when the file does not parse (the next Update says so and has it rebuilt).
func (s *Store) Remember(wsDir string) error {
	s.mu.Lock()
	var st State
	data, err := os.ReadFile(s.path)
	known := err == nil && (json.Unmarshal(data, &st) != nil || st.Workspace == wsDir)
	s.mu.Unlock()
	if known {
		return nil
	}
	return s.Update(func(st *State) { st.Workspace = wsDir })
}

// KnownWorkspace is a workspace Roro has worked with on this machine, as its state file
// records it: a local record, not what the cluster says.
type KnownWorkspace struct {
	// Dir is the workspace's folder; Name its roro.json name ("" when the folder or its
	// roro.json is gone or unreadable, and then Problem says why).
	Dir     string `json:"dir"`
	Name    string `json:"name"`
	Problem string `json:"problem,omitempty"`
	// Deployed is what Roro last saw running (by up, down or ps), as of Updated.
	Deployed []Deployed `json:"deployed"`
	Updated  time.Time  `json:"updated"`
}

// Known lists the workspaces whose state files are under dir (StateDir in the CLI), sorted
// by folder. A state file that does not parse is skipped: it is a cache.
func Known(dir string) ([]KnownWorkspace, error) {
	files, err := filepath.Glob(filepath.Join(dir, "workspaces", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []KnownWorkspace
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var st State
		if json.Unmarshal(data, &st) != nil || st.Workspace == "" {
			continue
		}
		kw := KnownWorkspace{Dir: st.Workspace, Deployed: st.Deployed}
		if kw.Deployed == nil {
			kw.Deployed = []Deployed{}
		}
		if fi, err := os.Stat(f); err == nil {
			kw.Updated = fi.ModTime()
		}
		kw.Name, kw.Problem = workspaceName(st.Workspace)
		out = append(out, kw)
	}
	slices.SortFunc(out, func(a, b KnownWorkspace) int { return compare(a.Dir, b.Dir) })
	return out, nil
}

// workspaceName reads only the name from a workspace's roro.json, or says why it cannot.
func workspaceName(dir string) (string, string) {
	data, err := os.ReadFile(filepath.Join(dir, "roro.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, serr := os.Stat(dir); serr != nil {
			return "", "the folder is gone"
		}
		return "", "no roro.json any more"
	case err != nil:
		return "", "roro.json cannot be read"
	}
	var f struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(data, &f) != nil || f.Name == "" {
		return "", "roro.json does not load"
	}
	return f.Name, ""
}

// Record sets the entry for d's app and instance.
func (st *State) Record(d Deployed) {
	st.Forget(d.App, d.Instance)
	st.Deployed = append(st.Deployed, d)
	slices.SortFunc(st.Deployed, func(a, b Deployed) int {
		if a.App != b.App {
			return compare(a.App, b.App)
		}
		return compare(a.Instance, b.Instance)
	})
}

// Forget drops the entry of app's instance.
func (st *State) Forget(app, instance string) {
	st.Deployed = slices.DeleteFunc(st.Deployed, func(d Deployed) bool { return d.App == app && d.Instance == instance })
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
