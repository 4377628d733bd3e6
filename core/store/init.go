package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rorokube/roro/core/workspace"
)

// InitWorkspace creates a workspace named name in dir, which must be new or empty: the
// scaffold of workspace.Scaffold, a git repository and a first commit. It builds it in a
// temporary folder beside dir and renames it into place only when everything, the git commit
// included, has succeeded.
func InitWorkspace(dir, name string, now time.Time) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("%s is not empty: give a new folder (roro init DIR) or empty this one", dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".roro-init-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	files, err := workspace.Scaffold(name)
	if err != nil {
		return err
	}
	for rel, data := range files {
		p := filepath.Join(tmp, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	if _, err := workspace.Load(tmp); err != nil {
		return fmt.Errorf("the new workspace does not load (a bug in roro): %w", err)
	}
	repo, err := Init(tmp)
	if err != nil {
		return err
	}
	if _, err := repo.CommitAll("Create workspace "+name+" with app hello", Author(now)); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("move the new workspace into %s: %w", dir, err)
	}
	return nil
}
