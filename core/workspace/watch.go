package workspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// Quiet is how long the files must stay unchanged before the workspace is loaded again
	// (default 150 ms): a burst of edits, a checkout or a pull, is one reload.
	Quiet time.Duration
	// MaxDelay bounds how long a stream of edits can hold a reload back (default 1 s).
	MaxDelay time.Duration
	// Loaded receives each workspace that loaded after a change.
	Loaded func(*Workspace)
	// Failed receives the load error, with its file and place, when a change leaves the
	// workspace not loading; the last good workspace stays the caller's.
	Failed func(error)
}

// Watcher loads a workspace again whenever its files change: an editor's save (in place, or
// a new file renamed over the old), a git checkout or pull, a push into it. It watches every
// folder of the workspace except .git, following none of its links. Run blocks; Ready is
// closed once the folders are watched.
type Watcher struct {
	dir   string
	opts  WatchOptions
	ready chan struct{}
}

// NewWatcher returns a Watcher of the workspace in dir. It watches nothing until Run.
func NewWatcher(dir string, opts WatchOptions) *Watcher {
	if opts.Quiet <= 0 {
		opts.Quiet = 150 * time.Millisecond
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = time.Second
	}
	if opts.Loaded == nil {
		opts.Loaded = func(*Workspace) {}
	}
	if opts.Failed == nil {
		opts.Failed = func(error) {}
	}
	return &Watcher{dir: dir, opts: opts, ready: make(chan struct{})}
}

// Ready is closed once every folder is watched: a change after it is seen.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Run watches until ctx ends, calling Loaded or Failed after each settled change.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", w.dir, err)
	}
	defer fw.Close()
	if err := w.addTree(fw, w.dir); err != nil {
		return err
	}
	close(w.ready)
	var quiet, latest <-chan time.Time
	var quietTimer, latestTimer *time.Timer
	stop := func() {
		if quietTimer != nil {
			quietTimer.Stop()
			latestTimer.Stop()
		}
		quiet, latest, quietTimer, latestTimer = nil, nil, nil, nil
	}
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			// The kernel's queue overflowed, or a watch failed: reload to be sure.
			w.opts.Failed(fmt.Errorf("watch %s: %w", w.dir, err))
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if w.ignored(ev.Name) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if info, err := os.Lstat(ev.Name); err == nil && info.IsDir() {
					_ = w.addTree(fw, ev.Name) // a folder made (or moved in) since
				}
			}
			if quietTimer == nil {
				latestTimer = time.NewTimer(w.opts.MaxDelay)
				latest = latestTimer.C
				quietTimer = time.NewTimer(w.opts.Quiet)
			} else {
				quietTimer.Reset(w.opts.Quiet)
			}
			quiet = quietTimer.C
			continue
		case <-quiet:
		case <-latest:
		}
		stop()
		ws, err := Load(w.dir)
		if err != nil {
			w.opts.Failed(err)
			continue
		}
		w.opts.Loaded(ws)
	}
}

// ignored reports whether a change at path cannot change the workspace: inside .git, or
// an editor's swap and backup files.
func (w *Watcher) ignored(path string) bool {
	rel, err := filepath.Rel(w.dir, path)
	if err != nil {
		return true
	}
	first, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
	base := filepath.Base(path)
	return first == ".git" || strings.HasSuffix(base, ".swp") || strings.HasSuffix(base, ".swx") ||
		strings.HasSuffix(base, "~") || strings.HasPrefix(base, ".#")
}

// addTree watches root and every folder under it but .git, following no link.
func (w *Watcher) addTree(fw *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return fmt.Errorf("watch %s: %w", p, err)
			}
			return nil // gone since, or unreadable: the loader will say
		}
		if !d.IsDir() {
			return nil
		}
		if d.Name() == ".git" && p != root {
			return filepath.SkipDir
		}
		if err := fw.Add(p); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("watch %s: %w (a workspace this large may need a higher fs.inotify.max_user_watches)", p, err)
		}
		return nil
	})
}
