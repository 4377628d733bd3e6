// Package runtime orchestrates roro's explicit lifecycle across apps and instances (up, down,
// ps), keeps the local state cache, and publishes one observable snapshot for the CLI, the
// window and the tray. It never draws.
package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
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

// Update applies fn to the state and writes the result atomically: a temporary file,
// fsync, rename, fsync of the folder. Updates from many goroutines apply one after another.
func (s *Store) Update(fn func(*State)) error {
	s.mu.Lock() // across read, change and write: parallel updates never lose one another
	defer s.mu.Unlock()
	st := s.load()
	fn(&st)
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return store.WriteFileAtomic(s.path, append(data, '\n'), 0o600)
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
