package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/rorokube/roro/core/store"
	"github.com/rorokube/roro/core/workspace"
)

func newInitCommand(opts *options) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Create a new workspace with one example app, a git repo and a first commit",
		Long: `Create a workspace in DIR (default: the current folder), which must be new or empty:
roro.json, an example app (apps/hello) with a forward and staging values, the JSON Schemas
the files reference (under .roro/schema, so editors complete and check them), a .gitignore,
and a git repository with a first commit. Nothing is left behind when a step fails.`,
		Example: `  roro init my-stack
  roro init --name shop .`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("%q takes at most one folder, got %d", cmd.CommandPath(), len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			if name == "" {
				name = workspace.NameFor(filepath.Base(abs))
			}
			if err := initWorkspace(abs, name, time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(opts.stdout, "Created workspace %s in %s with app hello and a first commit.\nNext: roro --workspace %s render hello\n", name, abs, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the workspace's name (default: from the folder's name)")
	return cmd
}

// initWorkspace builds the new workspace in a temporary folder beside dir and renames it
// into place only when everything, the git commit included, has succeeded.
func initWorkspace(dir, name string, now time.Time) error {
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
	repo, err := store.Init(tmp)
	if err != nil {
		return err
	}
	if _, err := repo.CommitAll("Create workspace "+name+" with app hello", store.Author(now)); err != nil {
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
