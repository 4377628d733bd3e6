// Package store keeps the workspace in git: every change is a commit with a message that
// says what changed. It never talks to a cluster.
package store

import (
	"errors"
	"fmt"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Repo is a workspace's git repository.
type Repo struct {
	Dir  string
	repo *git.Repository
}

// InitRepo creates a git repository in dir, on branch main.
func InitRepo(dir string) (*Repo, error) {
	r, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		return nil, fmt.Errorf("git init %s: %w", dir, err)
	}
	return &Repo{Dir: dir, repo: r}, nil
}

// Author is who commits: from git's configuration (user.name, user.email), else roro.
func Author(now time.Time) *object.Signature {
	sig := &object.Signature{Name: "roro", Email: "roro@localhost", When: now}
	for _, scope := range []config.Scope{config.GlobalScope, config.SystemScope} {
		cfg, err := config.LoadConfig(scope)
		if err != nil {
			continue
		}
		if cfg.User.Name != "" && cfg.User.Email != "" {
			sig.Name, sig.Email = cfg.User.Name, cfg.User.Email
			break
		}
	}
	return sig
}

// CommitAll stages every change in the work tree and commits it with message.
func (r *Repo) CommitAll(message string, author *object.Signature) (plumbing.Hash, error) {
	wt, err := r.repo.Worktree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("git add: %w", err)
	}
	h, err := wt.Commit(message, &git.CommitOptions{Author: author})
	if errors.Is(err, git.ErrEmptyCommit) {
		return plumbing.ZeroHash, fmt.Errorf("nothing to commit: %w", err)
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("git commit: %w", err)
	}
	return h, nil
}
