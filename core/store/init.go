package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rorokube/roro/core/workspace"
)

// InitOptions say how a workspace is created.
type InitOptions struct {
	// Name is the workspace's name.
	Name string
	// Now is the first commit's time.
	Now time.Time
	// Nested allows a workspace (and its repository) inside another git repository's work
	// tree; without it, init refuses there.
	Nested bool
}

// InitWorkspace creates a workspace named name in dir: Init with the default options.
func InitWorkspace(dir, name string, now time.Time) error {
	return Init(dir, InitOptions{Name: name, Now: now})
}

// Init creates a workspace in dir, which must be new or an empty folder: the scaffold of
// workspace.Scaffold, a git repository and a first commit. A new folder is built beside
// dir and renamed into place once everything, the commit included, succeeded; an existing
// empty folder (the current one, say) is filled in place, and on a failure only what init
// created is removed. A folder with something in it is refused, saying what.
func Init(dir string, opts InitOptions) error {
	entries, err := os.ReadDir(dir)
	exists := err == nil
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case len(entries) > 0:
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		if len(names) > 5 {
			names = append(names[:5], fmt.Sprintf("and %d more", len(names)-5))
		}
		return fmt.Errorf("%s is not empty (it has %s): give a new folder (roro init DIR) or an empty one", dir, strings.Join(names, ", "))
	}
	if top := enclosingRepo(dir); top != "" && !opts.Nested {
		return fmt.Errorf("%s is inside the git repository at %s: a workspace is a repository of its own, and init would nest one inside it. Create it elsewhere, or pass --nested to nest it anyway", dir, top)
	}
	files, err := workspace.Scaffold(opts.Name)
	if err != nil {
		return err
	}
	if exists {
		return fillInPlace(dir, files, opts)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".roro-init-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := build(tmp, files, opts); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("move the new workspace into %s: %w", dir, err)
	}
	return nil
}

// fillInPlace builds the workspace inside the existing empty folder dir, removing what it
// made when a step fails.
func fillInPlace(dir string, files map[string][]byte, opts InitOptions) (err error) {
	defer func() {
		if err == nil {
			return
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries { // dir was empty: everything in it is init's
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}()
	return build(dir, files, opts)
}

// build writes files into dir, checks that they load, and makes the repository and its
// first commit.
func build(dir string, files map[string][]byte, opts InitOptions) error {
	paths := make([]string, 0, len(files))
	for rel := range files {
		paths = append(paths, rel)
	}
	slices.Sort(paths)
	for _, rel := range paths {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, files[rel], 0o644); err != nil {
			return err
		}
	}
	if _, err := workspace.Load(dir); err != nil {
		return fmt.Errorf("the new workspace does not load (a bug in roro): %w", err)
	}
	repo, err := InitRepo(dir)
	if err != nil {
		return err
	}
	if _, err := repo.CommitAll("Create workspace "+opts.Name+" with app hello", Author(opts.Now)); err != nil {
		return err
	}
	return nil
}

// enclosingRepo is the work tree of the git repository dir would be inside, or "".
func enclosingRepo(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		if parent := filepath.Dir(d); parent == d {
			return ""
		}
	}
}
