package gui

import (
	"context"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/core/store"
	"github.com/rorokube/roro/core/workspace"
)

// Engine is what the window needs of core's engine: the snapshot it draws and the calls its
// actions make. *runtime.Engine implements it; the screen tests use a fake.
type Engine interface {
	Snapshot() *runtime.Snapshot
	Subscribe() (<-chan struct{}, func())
	Up(runtime.UpRequest) (*runtime.Operation, error)
	Down(runtime.DownRequest) (*runtime.Operation, error)
	Restart(app string, sel runtime.Selection, progress runtime.Reporter) (*runtime.Operation, error)
	Cancel(id uint64) bool
	StartForwards(ctx context.Context, app string, sel runtime.Selection) error
	StopForwards(app, instance string)
	Env(ctx context.Context, app string, sel runtime.Selection) (*render.Env, error)
	Render(ctx context.Context, app string, sel runtime.Selection) (*render.Result, *render.Env, error)
	Diff(ctx context.Context, app string, sel runtime.Selection, values map[string]any) (string, error)
	FollowLogs(app string, sel runtime.Selection) error
	LogLines(app, instance string) runtime.LogBuffer
	StopLogs(app, instance string)
	SetContext(name string)
	// The workspace's history and sync.
	History(app string, limit int) ([]store.Commit, error)
	Show(rev string) (store.Commit, string, error)
	Revert(rev string) (store.Commit, error)
	SetValues(app string, assignments []string, asString bool) (store.Commit, error)
	AddInstance(app, name string, inst workspace.Instance) (store.Commit, error)
	RemoveInstance(app, name string) (store.Commit, error)
	SyncNow(ctx context.Context, opts store.SyncOptions) (store.SyncState, error)
}

var _ Engine = (*runtime.Engine)(nil)
