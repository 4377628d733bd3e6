package gui

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gioui.org/layout"
	"gioui.org/widget"
	"gioui.org/widget/material"

	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/core/store"
	"github.com/rorokube/roro/core/workspace"
)

// gitState is the window's part of the workspace's history: editing values, the History
// page, and the sync buttons. Changes and syncs run off the window's goroutine; their
// results come back through results and a new frame.
type gitState struct {
	values     widget.Editor // KEY=VALUE assignments for the selected app
	setValues  widget.Clickable
	sync       widget.Clickable
	push       widget.Clickable
	revert     widget.Clickable
	addInst    widget.Clickable             // declares the instance named in the overview's field
	removeInst map[string]*widget.Clickable // by "app/instance"
	commits    map[string]*widget.Clickable // by hash
	open       string                       // the commit whose diff shows
	hist       loader[[]store.Commit]
	show       loader[[]string]
	stale      atomic.Bool // a change was made: the history loads again
	results    results
}

// results are the outcomes of changes made in the background, by where they show.
type results struct {
	mu sync.Mutex
	m  map[string]result
}

type result struct {
	text   string
	failed bool
}

func (r *results) set(where string, res result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]result{}
	}
	r.m[where] = res
}

func (r *results) get(where string) (result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res, ok := r.m[where]
	return res, ok
}

func (g *gitState) init() {
	g.values.SingleLine = true
	g.values.Submit = true
	g.commits = map[string]*widget.Clickable{}
}

// clickable is the button of key in m, made on first use.
func (g *gitState) clickable(m *map[string]*widget.Clickable, key string) *widget.Clickable {
	if *m == nil {
		*m = map[string]*widget.Clickable{}
	}
	b := (*m)[key]
	if b == nil {
		b = new(widget.Clickable)
		(*m)[key] = b
	}
	return b
}

// commitResult is what a change made, as the window says it.
func commitResult(c store.Commit, err error) result {
	if err != nil {
		return result{text: err.Error(), failed: true}
	}
	return result{text: "committed " + c.Short() + " " + c.Subject}
}

// updateGit handles the git widgets' input.
func (u *UI) updateGit(gtx layout.Context, snap *runtime.Snapshot) {
	g := &u.git
	submitted := false
	for {
		ev, ok := g.values.Update(gtx)
		if !ok {
			break
		}
		if _, ok := ev.(widget.SubmitEvent); ok {
			submitted = true
		}
	}
	if (g.setValues.Clicked(gtx) || submitted) && u.selected != "" {
		app, sets := u.selected, strings.Fields(g.values.Text())
		u.change("values/"+app, func() (store.Commit, error) { return u.eng.SetValues(app, sets, false) })
	}
	if g.addInst.Clicked(gtx) && u.selected != "" {
		app, name, env := u.selected, strings.TrimSpace(u.newInst.Text()), u.env
		u.change("instances/"+app, func() (store.Commit, error) {
			return u.eng.AddInstance(app, name, workspace.Instance{Environment: env})
		})
		u.newInst.SetText("")
	}
	for key, b := range g.removeInst {
		if b.Clicked(gtx) {
			app, name, _ := strings.Cut(key, "/")
			u.change("instances/"+app, func() (store.Commit, error) { return u.eng.RemoveInstance(app, name) })
		}
	}
	for hash, b := range g.commits {
		if b.Clicked(gtx) {
			if g.open == hash {
				g.open = ""
			} else {
				g.open = hash
			}
		}
	}
	if g.revert.Clicked(gtx) && g.open != "" && u.selected != "" {
		app, hash := u.selected, g.open
		u.change("history/"+app, func() (store.Commit, error) { return u.eng.Revert(hash) })
	}
	for _, b := range []struct {
		btn  *widget.Clickable
		push bool
	}{{&g.sync, false}, {&g.push, true}} {
		if b.btn.Clicked(gtx) {
			push := b.push
			// The result, an error included, shows in the snapshot's Git.
			go func() { _, _ = u.eng.SyncNow(context.Background(), store.SyncOptions{Push: push}) }()
		}
	}
}

// change makes a change off the window's goroutine; its commit or refusal shows at where.
func (u *UI) change(where string, do func() (store.Commit, error)) {
	g := &u.git
	g.results.set(where, result{text: "checking and committing…"})
	go func() {
		c, err := do()
		g.results.set(where, commitResult(c, err))
		if err == nil {
			g.stale.Store(true)
		}
		u.invalidate()
	}()
}

// gitBar is the top bar's sync state and buttons; nothing until the first sync.
func (u *UI) gitBar(snap *runtime.Snapshot) []layout.FlexChild {
	g := snap.Git
	if g.State == "" {
		return nil
	}
	s := u.style
	txt := gitText(g, time.Now())
	u.lines = append(u.lines, "git "+txt)
	col := s.pal.Muted
	switch g.State {
	case store.SyncDiverged, store.SyncFailed, store.SyncOffline:
		col = s.pal.Failed
	}
	sync := s.button(&u.git.sync, "Sync", "Sync the workspace with "+g.Remote+"/"+g.Branch)
	push := s.button(&u.git.push, "Push", "Push local commits to "+g.Remote+"/"+g.Branch)
	sync.quiet, push.quiet = true, true
	return []layout.FlexChild{
		layout.Rigid(layout.Spacer{Width: 16}.Layout),
		layout.Rigid(s.label(s.scale.Body, col, txt).Layout),
		layout.Rigid(layout.Spacer{Width: 6}.Layout),
		layout.Rigid(sync.Layout),
		layout.Rigid(layout.Spacer{Width: 4}.Layout),
		layout.Rigid(push.Layout),
	}
}

// gitText says where the workspace stands against its remote, in a few words.
func gitText(g runtime.GitView, now time.Time) string {
	where := g.Remote + "/" + g.Branch
	if g.Syncing {
		return where + ": syncing…"
	}
	var parts []string
	switch g.State {
	case store.SyncOffline, store.SyncFailed, store.SyncNotFollowing:
		parts = append(parts, g.State)
	default:
		if g.Ahead == 0 && g.Behind == 0 {
			parts = append(parts, "up to date")
		}
		if g.Ahead > 0 {
			parts = append(parts, fmt.Sprintf("%d ahead", g.Ahead))
		}
		if g.Behind > 0 {
			parts = append(parts, fmt.Sprintf("%d behind", g.Behind))
		}
	}
	if !g.Fetched.IsZero() {
		parts = append(parts, "fetched "+since(now, g.Fetched))
	}
	return where + ": " + strings.Join(parts, " · ")
}

// valuesLines are the overview's values editor: assignments in Helm's --set syntax, each
// change one commit, its result or error under it.
func (u *UI) valuesLines(app string) []layout.Widget {
	s := u.style
	g := &u.git
	out := []layout.Widget{u.section("Values"), func(gtx layout.Context) layout.Dimensions {
		return layout.Flex{Alignment: layout.Middle}.Layout(gtx,
			layout.Rigid(func(gtx layout.Context) layout.Dimensions {
				gtx.Constraints.Min.X, gtx.Constraints.Max.X = gtx.Dp(320), gtx.Dp(320)
				ed := material.Editor(s.th, &g.values, "replicas=3 image.tag=1.2")
				ed.Color, ed.HintColor, ed.TextSize = s.pal.Text, s.pal.Muted, s.scale.Body
				return ed.Layout(gtx)
			}),
			layout.Rigid(layout.Spacer{Width: 8}.Layout),
			layout.Rigid(s.button(&g.setValues, "Set and commit", "Set values of "+app).Layout))
	}}
	if res, ok := g.results.get("values/" + app); ok {
		col := s.pal.Muted
		if res.failed {
			col = s.pal.Failed
		}
		out = append(out, s.wrap(col, res.text).Layout)
	}
	return out
}

// historyLines are the History page: where the workspace stands against its remote (both
// sides' commits when they differ), then the app's commits, newest first; a commit opens
// to its diff, with Revert.
func (u *UI) historyLines(snap *runtime.Snapshot, app *runtime.AppView) []layout.Widget {
	s := u.style
	g := &u.git
	p := &u.pages
	var out []layout.Widget
	if gv := snap.Git; gv.State != "" {
		col := s.pal.Muted
		if gv.State == store.SyncDiverged || gv.State == store.SyncFailed {
			col = s.pal.Failed
		}
		out = append(out, s.wrap(col, gitText(gv, time.Now())+(": "+gv.Message)).Layout)
		for _, side := range []struct {
			title   string
			commits []string
		}{{"Here, not on " + gv.Remote + "/" + gv.Branch + ":", gv.AheadCommits}, {"On " + gv.Remote + "/" + gv.Branch + ", not here:", gv.BehindCommits}} {
			if len(side.commits) == 0 {
				continue
			}
			out = append(out, s.bold(s.scale.Body, side.title).Layout)
			for _, c := range side.commits {
				out = append(out, s.mono(s.pal.Text, "  "+c).Layout)
			}
		}
	}
	refresh := g.stale.Swap(false) || p.again
	commits, loading, err := g.hist.get(app.Name, refresh, func(context.Context) ([]store.Commit, error) {
		return u.eng.History(app.Name, 200)
	}, u.invalidate)
	switch {
	case loading:
		return append(out, s.wrap(s.pal.Muted, "Reading the history…").Layout)
	case err != nil:
		return append(out, s.wrap(s.pal.Failed, err.Error()).Layout)
	case len(commits) == 0:
		return append(out, s.wrap(s.pal.Muted, "No commit touches this app yet.").Layout)
	}
	if res, ok := g.results.get("history/" + app.Name); ok {
		col := s.pal.Muted
		if res.failed {
			col = s.pal.Failed
		}
		out = append(out, s.wrap(col, res.text).Layout)
	}
	for _, c := range commits {
		b := g.commits[c.Hash]
		if b == nil {
			b = new(widget.Clickable)
			g.commits[c.Hash] = b
		}
		line := fmt.Sprintf("%s  %s  %s  %s", c.Short(), c.When.Local().Format("2006-01-02 15:04"), c.AuthorName(), c.Subject)
		btn := s.button(b, line, "Commit "+c.Short())
		btn.quiet = g.open != c.Hash
		out = append(out, func(gtx layout.Context) layout.Dimensions {
			return layout.Flex{}.Layout(gtx, layout.Rigid(btn.Layout))
		})
		if g.open != c.Hash {
			continue
		}
		hash := c.Hash
		lines, loading, err := g.show.get(hash, false, func(context.Context) ([]string, error) {
			_, patch, err := u.eng.Show(hash)
			return strings.Split(strings.TrimRight(patch, "\n"), "\n"), err
		}, u.invalidate)
		out = append(out, func(gtx layout.Context) layout.Dimensions {
			return layout.Flex{}.Layout(gtx, layout.Rigid(s.button(&g.revert, "Revert this commit", "Revert "+c.Short()).Layout))
		})
		patch := u.textLines(lines, loading, err, "Reading the commit…", "", s.pal.Text)
		if !loading && err == nil {
			patch = patch[1:] // no Refresh button: a commit does not change
		}
		out = append(out, patch...)
	}
	return out
}
