package runtime

import (
	"context"
	"time"

	"github.com/rorokube/roro/core/store"
)

// GitSyncer syncs the workspace's repository with its remote: *store.Store.
type GitSyncer interface {
	Sync(ctx context.Context, opts store.SyncOptions) (store.SyncState, error)
}

// SyncNow syncs the workspace with its remote now (the window's Sync and Push buttons, `roro
// sync`) and publishes the result in the snapshot's Git. Files a sync changes reach the
// engine through the file watcher.
func (e *Engine) SyncNow(ctx context.Context, opts store.SyncOptions) (store.SyncState, error) {
	if e.opts.GitSync == nil {
		return store.SyncState{}, errNoGit
	}
	e.mu.Lock()
	e.git.Syncing = true
	e.mu.Unlock()
	e.changed()
	st, err := e.opts.GitSync.Sync(ctx, opts)
	e.mu.Lock()
	e.git = gitView(st, e.opts.Now())
	e.mu.Unlock()
	e.changed()
	return st, err
}

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

// syncLoop syncs in the background every sync.interval of the workspace (default 5 min;
// 0 only on demand; never when it says offline, which Sync itself refuses), until Close.
func (e *Engine) syncLoop() {
	for {
		interval, err := e.Workspace().SyncInterval()
		if err != nil || interval == 0 {
			interval = time.Hour // only on demand: look again at the next reload's settings
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
