package runtime

import (
	"context"
	"time"

	"github.com/rorokube/roro/core/store"
	"github.com/rorokube/roro/core/workspace"
)

// Repo is the workspace's git repository as the engine uses it: *store.Store. Every change
// is a commit; sync follows the remote.
type Repo interface {
	Sync(ctx context.Context, opts store.SyncOptions) (store.SyncState, error)
	History(app string, limit int) ([]store.Commit, error)
	Show(rev string) (store.Commit, string, error)
	Revert(rev string) (store.Commit, error)
	SetValues(app string, assignments []string, asString bool) (store.Commit, error)
	AddInstance(app, name string, inst workspace.Instance) (store.Commit, error)
	RemoveInstance(app, name string) (store.Commit, error)
}

// SyncNow syncs the workspace with its remote now (the window's Sync and Push buttons, `roro
// sync`) and publishes the result in the snapshot's Git. Files a sync changes reach the
// engine through the file watcher, and at once here.
func (e *Engine) SyncNow(ctx context.Context, opts store.SyncOptions) (store.SyncState, error) {
	if e.opts.Repo == nil {
		return store.SyncState{}, errNoGit
	}
	e.mu.Lock()
	e.git.Syncing = true
	e.mu.Unlock()
	e.changed()
	st, err := e.opts.Repo.Sync(ctx, opts)
	e.mu.Lock()
	e.git = gitView(st, e.opts.Now())
	e.mu.Unlock()
	if st.State == store.SyncFastForward || st.State == store.SyncRebased {
		e.reloadFromDisk()
	}
	e.changed()
	return st, err
}

// History lists the workspace's commits (an app's only, given one), newest first.
func (e *Engine) History(app string, limit int) ([]store.Commit, error) {
	if e.opts.Repo == nil {
		return nil, errNoGit
	}
	return e.opts.Repo.History(app, limit)
}

// Show is one commit and its diff.
func (e *Engine) Show(rev string) (store.Commit, string, error) {
	if e.opts.Repo == nil {
		return store.Commit{}, "", errNoGit
	}
	return e.opts.Repo.Show(rev)
}

// Revert undoes a commit with a new one, and reloads.
func (e *Engine) Revert(rev string) (store.Commit, error) {
	return e.change(func(r Repo) (store.Commit, error) { return r.Revert(rev) })
}

// SetValues sets an app's values (Helm's --set syntax) as one commit, and reloads.
func (e *Engine) SetValues(app string, assignments []string, asString bool) (store.Commit, error) {
	return e.change(func(r Repo) (store.Commit, error) { return r.SetValues(app, assignments, asString) })
}

// AddInstance adds a further instance of an app as one commit, and reloads.
func (e *Engine) AddInstance(app, name string, inst workspace.Instance) (store.Commit, error) {
	return e.change(func(r Repo) (store.Commit, error) { return r.AddInstance(app, name, inst) })
}

// RemoveInstance removes an instance from app.json as one commit, and reloads. What runs of
// it is left alone.
func (e *Engine) RemoveInstance(app, name string) (store.Commit, error) {
	return e.change(func(r Repo) (store.Commit, error) { return r.RemoveInstance(app, name) })
}

// change makes a change through the repository and loads its result at once, rather than
// when the file watcher sees it.
func (e *Engine) change(do func(Repo) (store.Commit, error)) (store.Commit, error) {
	if e.opts.Repo == nil {
		return store.Commit{}, errNoGit
	}
	c, err := do(e.opts.Repo)
	if err != nil {
		return c, err
	}
	e.reloadFromDisk()
	return c, nil
}

// reloadFromDisk loads the workspace's files as they are and takes them, or publishes why
// they do not load.
func (e *Engine) reloadFromDisk() {
	ws, err := workspace.Load(e.Workspace().Dir)
	if err != nil {
		e.loadFailed(err)
		return
	}
	e.reloaded(ws)
}

// firstSync is how soon after start the first background sync runs.
const firstSync = 2 * time.Second

// gitView is a sync's result as the snapshot shows it.
func gitView(st store.SyncState, now time.Time) GitView {
	v := GitView{State: st.State, Message: st.Message, Remote: st.Remote, Branch: st.Branch,
		Ahead: st.Ahead, Behind: st.Behind, Fetched: st.Fetched, At: now}
	for _, c := range st.AheadCommits {
		v.AheadCommits = append(v.AheadCommits, c.Short()+" "+c.Subject)
	}
	for _, c := range st.BehindCommits {
		v.BehindCommits = append(v.BehindCommits, c.Short()+" "+c.Subject)
	}
	return v
}

// syncLoop syncs in the background shortly after start (so the window soon says where the
// workspace stands), then every sync.interval of the workspace (default 5 min; 0 only on
// demand; never when it says offline, which Sync itself refuses), until Close.
func (e *Engine) syncLoop() {
	first := true
	for {
		interval, err := e.Workspace().SyncInterval()
		if err != nil || interval == 0 {
			interval = time.Hour // only on demand: look again at the next reload's settings
		}
		if first {
			interval, first = min(interval, firstSync), false
		}
		t := time.NewTimer(interval)
		select {
		case <-e.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if d, _ := e.Workspace().SyncInterval(); d == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(e.ctx, 2*time.Minute)
		_, _ = e.SyncNow(ctx, store.SyncOptions{}) // its result is in the snapshot
		cancel()
	}
}
