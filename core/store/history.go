package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/rorokube/roro/core/workspace"
)

// History lists the commits of the workspace, newest first, at most limit (0: all). With
// app set, only the commits that touched that app's folder.
func (s *Store) History(app string, limit int) ([]Commit, error) {
	head, err := s.repo.Head()
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return nil, nil // no commit yet
	}
	if err != nil {
		return nil, fmt.Errorf("git log: %w", err)
	}
	opts := &git.LogOptions{From: head.Hash(), Order: git.LogOrderCommitterTime}
	if app != "" {
		rel, _, err := s.appFile(app)
		if err != nil {
			return nil, err
		}
		dir := strings.TrimSuffix(rel, workspace.AppFileName)
		opts.PathFilter = func(p string) bool { return strings.HasPrefix(p, dir) }
	}
	iter, err := s.repo.Log(opts)
	if err != nil {
		return nil, fmt.Errorf("git log: %w", err)
	}
	defer iter.Close()
	var out []Commit
	err = iter.ForEach(func(c *object.Commit) error {
		if limit > 0 && len(out) == limit {
			return storer.ErrStop
		}
		cm, err := s.commitOf(c.Hash)
		if err != nil {
			return err
		}
		out = append(out, cm)
		return nil
	})
	return out, err
}

// resolve finds the commit rev names: a hash (full or abbreviated), a branch, HEAD~N.
func (s *Store) resolve(rev string) (*object.Commit, error) {
	h, err := s.repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, fmt.Errorf("no commit %q in the workspace's history (roro history lists them)", rev)
	}
	return s.repo.CommitObject(*h)
}

// Show describes the commit rev and returns its change as a unified diff.
func (s *Store) Show(rev string) (Commit, string, error) {
	c, err := s.resolve(rev)
	if err != nil {
		return Commit{}, "", err
	}
	cm, err := s.commitOf(c.Hash)
	if err != nil {
		return Commit{}, "", err
	}
	patch, err := patchOf(c)
	if err != nil {
		return Commit{}, "", err
	}
	return cm, patch, nil
}

// patchOf is c's change against its first parent, as a unified diff.
func patchOf(c *object.Commit) (string, error) {
	to, err := c.Tree()
	if err != nil {
		return "", err
	}
	var from *object.Tree
	if c.NumParents() > 0 {
		p, err := c.Parent(0)
		if err != nil {
			return "", err
		}
		if from, err = p.Tree(); err != nil {
			return "", err
		}
	}
	patch, err := from.Patch(to)
	if err != nil {
		return "", fmt.Errorf("diff %s: %w", c.Hash, err)
	}
	return patch.String(), nil
}

// Revert makes a new commit that undoes the commit rev. It applies only when every file rev
// changed is, now, as rev left it (or, for a file rev removed, still absent); otherwise it is
// refused, naming the files changed since, and nothing is written.
func (s *Store) Revert(rev string) (Commit, error) {
	c, err := s.resolve(rev)
	if err != nil {
		return Commit{}, &ChangeError{Change: "Revert " + rev, Err: err}
	}
	subject, _, _ := strings.Cut(c.Message, "\n")
	message := fmt.Sprintf("Revert %q\n\nThis reverts commit %s.", subject, c.Hash)
	return s.change(message, func(read func(string) ([]byte, error)) (edit, error) {
		if c.NumParents() > 1 {
			return nil, fmt.Errorf("%s is a merge: Roro reverts single-parent commits only (use git revert -m)", c.Hash.String()[:7])
		}
		after, err := c.Tree()
		if err != nil {
			return nil, err
		}
		var before *object.Tree
		if c.NumParents() == 1 {
			p, err := c.Parent(0)
			if err != nil {
				return nil, err
			}
			if before, err = p.Tree(); err != nil {
				return nil, err
			}
		}
		changes, err := object.DiffTree(before, after)
		if err != nil {
			return nil, err
		}
		ed := edit{}
		var conflicts []string
		for _, ch := range changes {
			// What the commit left (to) must be what is there now; what it replaced (from)
			// comes back.
			if ch.To.Name != "" {
				want, err := blob(after, ch.To.Name)
				if err != nil {
					return nil, err
				}
				now, err := read(ch.To.Name)
				if err != nil || !bytes.Equal(now, want) {
					conflicts = append(conflicts, ch.To.Name)
					continue
				}
				ed[ch.To.Name] = nil
			} else if _, err := read(ch.From.Name); err == nil {
				conflicts = append(conflicts, ch.From.Name) // removed by the commit, back since
				continue
			}
			if ch.From.Name != "" {
				data, err := blob(before, ch.From.Name)
				if err != nil {
					return nil, err
				}
				ed[ch.From.Name] = data
			}
		}
		if len(conflicts) > 0 {
			return nil, fmt.Errorf("it does not apply cleanly: %s changed since %s; revert by hand, or revert the later commits first",
				strings.Join(conflicts, ", "), c.Hash.String()[:7])
		}
		return ed, nil
	})
}

// blob reads the file name of tree t.
func blob(t *object.Tree, name string) ([]byte, error) {
	f, err := t.File(filepath.ToSlash(name))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
