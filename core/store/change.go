package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/rorokube/roro/core/workspace"
)

// Store is a workspace seen through its git repository: every change made through it is
// checked with the workspace's strict loader first (a bad change writes nothing), then
// written file by file atomically and committed as one commit whose message says what
// changed. It is safe for concurrent use; changes run one at a time.
type Store struct {
	dir  string
	repo *git.Repository
	now  func() time.Time
	mu   sync.Mutex
}

// Open opens the workspace in dir, which must be the top of a git repository (`roro init`
// makes one). now is the clock for commit times.
func Open(dir string, now func() time.Time) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	r, err := git.PlainOpen(abs)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return nil, fmt.Errorf("%s is not a git repository: Roro keeps a workspace's history in git (run `git init` there, or create workspaces with `roro init`)", abs)
	}
	if err != nil {
		return nil, fmt.Errorf("open the git repository in %s: %w", abs, err)
	}
	return &Store{dir: abs, repo: r, now: now}, nil
}

// Dir is the workspace's folder.
func (s *Store) Dir() string { return s.dir }

// Commit is one commit of the workspace's history.
type Commit struct {
	Hash    string
	Author  string // "Name <email>"
	When    time.Time
	Subject string // the message's first line
	Message string
	// Files are the paths the commit changed, relative to the workspace, sorted.
	Files []string
}

// Short is the commit's abbreviated hash, as git prints it.
func (c Commit) Short() string { return c.Hash[:min(7, len(c.Hash))] }

// AuthorName is the name part of Author.
func (c Commit) AuthorName() string {
	name, _, _ := strings.Cut(c.Author, " <")
	return name
}

// ChangeError is a change Roro refused to make: nothing was written or committed.
type ChangeError struct {
	Change string // what was asked, as the commit message would have said it
	Err    error
}

func (e *ChangeError) Error() string {
	return fmt.Sprintf("%s: not done, nothing was written: %v", e.Change, e.Err)
}

func (e *ChangeError) Unwrap() error { return e.Err }

// edit is what a change writes: a path relative to the workspace (slash-separated) and its
// new content; nil content removes the file.
type edit map[string][]byte

// change makes one change: build computes the edit from the workspace's current files
// (read reads one, relative to the workspace); the result is checked by loading the
// workspace with the edit applied in a scratch copy, then written and committed with
// message.
func (s *Store) change(message string, build func(read func(rel string) ([]byte, error)) (edit, error)) (Commit, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	subject, _, _ := strings.Cut(message, "\n")
	fail := func(err error) (Commit, error) { return Commit{}, &ChangeError{Change: subject, Err: err} }
	read := func(rel string) ([]byte, error) {
		return workspace.ReadFile(s.dir, filepath.Join(s.dir, filepath.FromSlash(rel)))
	}
	ed, err := build(read)
	if err != nil {
		return fail(err)
	}
	if len(ed) == 0 {
		return fail(errors.New("it changes nothing"))
	}
	if err := s.checkClean(ed); err != nil {
		return fail(err)
	}
	if err := s.check(ed); err != nil {
		return fail(err)
	}
	undo, err := s.write(ed)
	if err != nil {
		undo()
		return fail(err)
	}
	c, err := s.commit(message, ed)
	if err != nil {
		undo()
		return fail(err)
	}
	return c, nil
}

// checkClean refuses an edit of a file that has changes not committed: committing the
// change would commit them too, and writing it would lose them.
func (s *Store) checkClean(ed edit) error {
	wt, err := s.repo.Worktree()
	if err != nil {
		return err
	}
	st, err := wt.Status()
	if err != nil {
		return fmt.Errorf("git status: %w", err)
	}
	var dirty []string
	for rel := range ed {
		if fs, ok := st[rel]; ok && (fs.Worktree != git.Unmodified || fs.Staging != git.Unmodified) && fs.Worktree != git.Untracked {
			dirty = append(dirty, rel)
		}
	}
	if len(dirty) > 0 {
		sort.Strings(dirty)
		return fmt.Errorf("%s %s changes that are not committed: commit or discard them first (git -C %s status)",
			strings.Join(dirty, ", "), plural(len(dirty), "has", "have"), s.dir)
	}
	return nil
}

// check loads a scratch copy of the workspace with ed applied, with the strict loader.
// Errors name the workspace's own paths.
func (s *Store) check(ed edit) error {
	tmp, err := os.MkdirTemp("", "roro-change-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	err = filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.dir, p)
		if rel == ".git" {
			return filepath.SkipDir
		}
		if _, edited := ed[filepath.ToSlash(rel)]; edited {
			return nil
		}
		dst := filepath.Join(tmp, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, data, 0o644)
		}
		return nil // pipes, sockets: the loader refuses them where it meets them
	})
	if err != nil {
		return fmt.Errorf("copy the workspace to check the change: %w", err)
	}
	for rel, data := range ed {
		if data == nil {
			continue
		}
		dst := filepath.Join(tmp, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return err
		}
	}
	if _, err := workspace.Load(tmp); err != nil {
		return errors.New(strings.ReplaceAll(err.Error(), tmp, s.dir))
	}
	return nil
}

// write writes ed into the workspace, each file atomically (a temporary file beside it,
// renamed over it). undo puts back what was there before; it is safe to call after a
// failure part way.
func (s *Store) write(ed edit) (undo func(), err error) {
	type saved struct {
		rel  string
		data []byte // nil: the file did not exist
	}
	var done []saved
	var madeDirs []string
	undo = func() {
		for _, sv := range slices.Backward(done) {
			p := filepath.Join(s.dir, filepath.FromSlash(sv.rel))
			if sv.data == nil {
				_ = os.Remove(p)
			} else {
				_ = WriteFileAtomic(p, sv.data, 0o644)
			}
		}
		for _, d := range slices.Backward(madeDirs) {
			_ = os.Remove(d) // only when empty
		}
	}
	rels := make([]string, 0, len(ed))
	for rel := range ed {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	for _, rel := range rels {
		p := filepath.Join(s.dir, filepath.FromSlash(rel))
		old, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return undo, err
		}
		if data := ed[rel]; data == nil {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return undo, err
			}
		} else {
			for d := filepath.Dir(p); d != s.dir; d = filepath.Dir(d) {
				if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
					madeDirs = append([]string{d}, madeDirs...)
				}
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return undo, err
			}
			if err := WriteFileAtomic(p, data, 0o644); err != nil {
				return undo, err
			}
		}
		done = append(done, saved{rel: rel, data: old})
	}
	return undo, nil
}

// commit stages exactly the paths of ed and commits them.
func (s *Store) commit(message string, ed edit) (Commit, error) {
	wt, err := s.repo.Worktree()
	if err != nil {
		return Commit{}, err
	}
	for rel, data := range ed {
		if data == nil {
			if _, err := wt.Remove(rel); err != nil && !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "entry not found") {
				return Commit{}, fmt.Errorf("git rm %s: %w", rel, err)
			}
			continue
		}
		if _, err := wt.Add(rel); err != nil {
			return Commit{}, fmt.Errorf("git add %s: %w", rel, err)
		}
	}
	h, err := wt.Commit(message, &git.CommitOptions{Author: s.author()})
	if err != nil {
		return Commit{}, fmt.Errorf("git commit: %w", err)
	}
	return s.commitOf(h)
}

// author is who commits: the repository's git configuration, then the user's and the
// system's (user.name, user.email), else roro.
func (s *Store) author() *object.Signature {
	sig := Author(s.now())
	if cfg, err := s.repo.ConfigScoped(config.LocalScope); err == nil && cfg.User.Name != "" && cfg.User.Email != "" {
		sig.Name, sig.Email = cfg.User.Name, cfg.User.Email
	}
	return sig
}

// commitOf describes the commit h.
func (s *Store) commitOf(h plumbing.Hash) (Commit, error) {
	c, err := s.repo.CommitObject(h)
	if err != nil {
		return Commit{}, fmt.Errorf("read commit %s: %w", h, err)
	}
	files, err := changedFiles(c)
	if err != nil {
		return Commit{}, err
	}
	subject, _, _ := strings.Cut(c.Message, "\n")
	return Commit{Hash: h.String(), Author: c.Author.Name + " <" + c.Author.Email + ">", When: c.Author.When,
		Subject: subject, Message: c.Message, Files: files}, nil
}

// changedFiles lists the paths c changed against its first parent (all of them for a
// root commit).
func changedFiles(c *object.Commit) ([]string, error) {
	to, err := c.Tree()
	if err != nil {
		return nil, err
	}
	var from *object.Tree
	if c.NumParents() > 0 {
		p, err := c.Parent(0)
		if err != nil {
			return nil, err
		}
		if from, err = p.Tree(); err != nil {
			return nil, err
		}
	}
	changes, err := object.DiffTree(from, to)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, ch := range changes {
		name := ch.To.Name
		if name == "" {
			name = ch.From.Name
		}
		files = append(files, name)
	}
	sort.Strings(files)
	return slices.Compact(files), nil
}

// appFile is the path of an app's app.json relative to the workspace, slash-separated.
func (s *Store) appFile(app string) (string, *workspace.App, error) {
	ws, err := workspace.Load(s.dir)
	if err != nil {
		return "", nil, fmt.Errorf("the workspace does not load as it is; fix it first: %w", err)
	}
	a, err := ws.Lookup(app)
	if err != nil {
		return "", nil, err
	}
	rel, err := filepath.Rel(s.dir, filepath.Join(a.Dir, workspace.AppFileName))
	if err != nil {
		return "", nil, err
	}
	return filepath.ToSlash(rel), a, nil
}

// indentJSON marshals v as the workspace's files are written: two spaces, a final newline.
func indentJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// slash joins path elements with "/".
func slash(elem ...string) string { return path.Join(elem...) }
