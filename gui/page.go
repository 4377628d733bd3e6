package gui

import (
	"fmt"
	"strconv"
	"strings"

	"gioui.org/layout"
	"gioui.org/widget"
	"gioui.org/widget/material"

	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/forward"
)

// appPage draws the selected app: its instances with their objects and health, its
// forwards, and the last operation that touched it with its log and errors.
func (u *UI) appPage(gtx layout.Context, snap *runtime.Snapshot) layout.Dimensions {
	s := u.style
	app := snap.App(u.selected)
	if app == nil {
		msg := "Select an app on the left."
		if len(snap.Apps) == 0 {
			msg = "This workspace has no apps yet. An app is a folder under the workspace's members (apps/* by default) holding an app.json and its manifests; `roro init` makes an example."
		}
		return layout.UniformInset(16).Layout(gtx, s.wrap(s.pal.Muted, msg).Layout)
	}
	var lines []layout.Widget
	add := func(w ...layout.Widget) { lines = append(lines, w...) }
	col, hollow := s.healthColor(app.Health)
	add(func(gtx layout.Context) layout.Dimensions {
		return layout.Flex{Alignment: layout.Middle}.Layout(gtx,
			layout.Rigid(s.bold(s.scale.Title, app.Name).Layout),
			layout.Rigid(layout.Spacer{Width: 10}.Layout),
			layout.Rigid(func(gtx layout.Context) layout.Dimensions { return dot(gtx, col, hollow, 12) }),
			layout.Rigid(layout.Spacer{Width: 6}.Layout),
			layout.Rigid(s.label(s.scale.Body, s.pal.Text, healthWord(app.Health)).Layout),
			layout.Rigid(layout.Spacer{Width: 12}.Layout),
			layout.Flexed(1, s.label(s.scale.Body, s.pal.Muted, strings.TrimSpace(orDefault(app.Group, "")+"  namespace "+app.Namespace+"  engine "+app.Engine+dependsText(app.DependsOn))).Layout),
		)
	})
	add(u.tabBar)
	if u.pages.current != tabOverview {
		add(u.tabLines(snap, app)...)
		return u.pageList(gtx, lines)
	}
	// The last operation on the app, first when it failed: its errors are where they belong.
	if op := lastOp(snap, app.Name); op != nil {
		add(u.section("Last operation"))
		add(u.opLines(op)...)
	}
	add(u.section("Instances"))
	for i := range app.Instances {
		add(u.instanceLines(&app.Instances[i])...)
	}
	add(func(gtx layout.Context) layout.Dimensions { // a further copy, by name
		return layout.Flex{Alignment: layout.Middle}.Layout(gtx,
			layout.Rigid(func(gtx layout.Context) layout.Dimensions {
				gtx.Constraints.Min.X, gtx.Constraints.Max.X = gtx.Dp(220), gtx.Dp(220)
				ed := material.Editor(s.th, &u.newInst, "new instance name, e.g. pr-7")
				ed.Color, ed.HintColor, ed.TextSize = s.pal.Text, s.pal.Muted, s.scale.Body
				return ed.Layout(gtx)
			}),
			layout.Rigid(layout.Spacer{Width: 8}.Layout),
			layout.Rigid(s.button(&u.newInstUp, "Up this instance", "Up a new instance of "+app.Name).Layout),
			layout.Rigid(layout.Spacer{Width: 6}.Layout),
			layout.Rigid(s.button(&u.git.addInst, "Add to app.json", "Declare a new instance of "+app.Name).Layout))
	})
	if res, ok := u.git.results.get("instances/" + app.Name); ok {
		col := s.pal.Muted
		if res.failed {
			col = s.pal.Failed
		}
		add(s.wrap(col, res.text).Layout)
	}
	add(u.section("Forwards"))
	add(u.forwardLines(snap, app)...)
	add(u.valuesLines(app.Name)...)
	return u.pageList(gtx, lines)
}

// pageList lays an app page's lines out in a scrolling list.
func (u *UI) pageList(gtx layout.Context, lines []layout.Widget) layout.Dimensions {
	return layout.Inset{Left: 16, Right: 16, Top: 12}.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
		return material.List(u.style.th, &u.page).Layout(gtx, len(lines), func(gtx layout.Context, i int) layout.Dimensions {
			return layout.Inset{Bottom: 3}.Layout(gtx, lines[i])
		})
	})
}

func dependsText(deps []string) string {
	if len(deps) == 0 {
		return ""
	}
	return "  depends on " + strings.Join(deps, ", ")
}

// section is a heading between parts of the page.
func (u *UI) section(title string) layout.Widget {
	s := u.style
	return func(gtx layout.Context) layout.Dimensions {
		return layout.Inset{Top: 14, Bottom: 4}.Layout(gtx, s.bold(s.scale.Heading, title).Layout)
	}
}

// lastOp is the newest operation that touched app.
func lastOp(snap *runtime.Snapshot, app string) *runtime.OperationView {
	for i := range snap.Operations {
		for _, t := range snap.Operations[i].Targets {
			if t.App == app {
				return &snap.Operations[i]
			}
		}
	}
	return nil
}

// opLines shows an operation: what, its state and step, its errors on their objects, and the
// end of its log.
func (u *UI) opLines(op *runtime.OperationView) []layout.Widget {
	s := u.style
	state := string(op.State)
	c := s.pal.Text
	switch op.State {
	case runtime.OpFailed:
		c = s.pal.Failed
	case runtime.OpRunning:
		state += " · " + string(op.Step)
		c = s.pal.Working
	}
	out := []layout.Widget{s.label(s.scale.Body, c, fmt.Sprintf("%s %s — %s", op.Kind, targetsText(op.Targets), state)).Layout}
	for _, p := range op.Problems {
		msg := p.Error()
		out = append(out, func(gtx layout.Context) layout.Dimensions {
			return fill(gtx, s.pal.Error, func(gtx layout.Context) layout.Dimensions {
				return layout.UniformInset(6).Layout(gtx, s.wrap(s.pal.ErrorText, msg).Layout)
			})
		})
	}
	log := op.Log
	if len(log) > 12 {
		log = log[len(log)-12:]
	}
	for _, ev := range log {
		line := ev.At.Format("15:04:05") + "  " + strings.TrimRight(ev.String(), " ")
		col := s.pal.Muted
		if ev.Step == runtime.StepFailed || ev.Step == runtime.StepWarning {
			col = s.pal.Failed
		}
		out = append(out, s.mono(col, line).Layout)
	}
	return out
}

// instanceLines shows an instance and each of its objects with health and kstatus message.
func (u *UI) instanceLines(iv *runtime.InstanceView) []layout.Widget {
	s := u.style
	col, hollow := s.healthColor(iv.Health)
	head := fmt.Sprintf("%s · namespace %s · environment %s", iv.Instance, iv.Namespace, orDash(iv.Environment))
	if iv.Busy != 0 {
		head += fmt.Sprintf(" · operation #%d running", iv.Busy)
	}
	// A declared further instance can leave app.json (as one commit); what runs of it stays.
	var remove layout.Widget
	if iv.Declared && iv.Instance != "default" && !iv.Running {
		b := u.git.clickable(&u.git.removeInst, iv.App+"/"+iv.Instance)
		btn := s.button(b, "Remove from app.json", "Remove instance "+iv.Instance+" of "+iv.App)
		btn.quiet = true
		remove = btn.Layout
	}
	out := []layout.Widget{func(gtx layout.Context) layout.Dimensions {
		children := []layout.FlexChild{
			layout.Rigid(func(gtx layout.Context) layout.Dimensions { return dot(gtx, col, hollow, 10) }),
			layout.Rigid(layout.Spacer{Width: 6}.Layout),
			layout.Rigid(s.label(s.scale.Body, s.pal.Text, healthWord(iv.Health)).Layout),
			layout.Rigid(layout.Spacer{Width: 10}.Layout),
			layout.Rigid(s.label(s.scale.Body, s.pal.Text, head).Layout),
		}
		if remove != nil {
			children = append(children, layout.Rigid(layout.Spacer{Width: 10}.Layout), layout.Rigid(remove))
		}
		return layout.Flex{Alignment: layout.Middle}.Layout(gtx, children...)
	}}
	for _, o := range iv.Objects {
		h := runtime.Healthy
		if !o.Health.Healthy() {
			h = runtime.Progressing
			if o.Health.Status == "Failed" {
				h = runtime.Failed
			}
		}
		oc, _ := s.healthColor(h)
		txt := o.Ref.String() + "  " + string(o.Health.Status)
		if o.Health.Message != "" && !o.Health.Healthy() {
			txt += ": " + o.Health.Message
		}
		out = append(out, func(gtx layout.Context) layout.Dimensions {
			return layout.Inset{Left: 18}.Layout(gtx, s.label(s.scale.Small, oc, txt).Layout)
		})
	}
	return out
}

// forwardLines shows the app's forwards: address → target, state and pod, counters, the
// latest events, and a button to start or stop them.
func (u *UI) forwardLines(snap *runtime.Snapshot, app *runtime.AppView) []layout.Widget {
	s := u.style
	var out []layout.Widget
	for _, iv := range app.Instances {
		if app.Forwards == 0 || (!iv.Running && !running(snap, app.Name, iv.Instance)) {
			continue
		}
		key := app.Name + "/" + iv.Instance
		row := u.forwards[key]
		if row == nil {
			row = &forwardRow{}
			u.forwards[key] = row
		}
		on := running(snap, app.Name, iv.Instance)
		label, desc := "Start forwards", "Start the forwards of "+key
		if on {
			label, desc = "Stop forwards", "Stop the forwards of "+key
		}
		out = append(out, func(gtx layout.Context) layout.Dimensions {
			return layout.Flex{Alignment: layout.Middle}.Layout(gtx,
				layout.Rigid(s.label(s.scale.Body, s.pal.Text, iv.Instance).Layout),
				layout.Rigid(layout.Spacer{Width: 10}.Layout),
				layout.Rigid(s.button(&row.toggle, label, desc).Layout))
		})
	}
	for _, f := range snap.Forwards {
		if f.App != app.Name {
			continue
		}
		if f.Err != "" {
			msg := f.Instance + ": forwards not running: " + f.Err
			out = append(out, func(gtx layout.Context) layout.Dimensions {
				return fill(gtx, s.pal.Error, func(gtx layout.Context) layout.Dimensions {
					return layout.UniformInset(6).Layout(gtx, s.wrap(s.pal.ErrorText, msg).Layout)
				})
			})
			continue
		}
		out = append(out, u.forwardStatus(f.Status)...)
	}
	if len(out) == 0 {
		out = append(out, s.label(s.scale.Body, s.pal.Muted, forwardsHint(app)).Layout)
	}
	return out
}

func forwardsHint(app *runtime.AppView) string {
	if app.Forwards == 0 {
		return "This app declares no forwards (\"forwards\" in its app.json)."
	}
	return "Its forwards start with Up, once the app is healthy."
}

func (u *UI) forwardStatus(st forward.Status) []layout.Widget {
	s := u.style
	c := s.pal.Working
	switch st.State {
	case forward.Connected:
		c = s.pal.Healthy
	case forward.Failed:
		c = s.pal.Failed
	}
	var addrs []string
	var buttons []layout.FlexChild
	for _, p := range st.Ports {
		addr := st.Address + ":" + strconv.Itoa(p.Local)
		addrs = append(addrs, addr+" → "+st.Target+":"+p.Remote)
		b := u.addrs[addr]
		if b == nil {
			b = &addrButtons{}
			u.addrs[addr] = b
		}
		buttons = append(buttons,
			layout.Rigid(s.button(&b.open, "Open "+addr, "Open "+addr).Layout), layout.Rigid(layout.Spacer{Width: 4}.Layout),
			layout.Rigid(s.button(&b.copy, "Copy", "Copy "+addr).Layout), layout.Rigid(layout.Spacer{Width: 10}.Layout))
	}
	state := string(st.State)
	if st.Pod != "" {
		state += " to pod " + st.Pod
	}
	if st.Reason != "" && st.State != forward.Connected {
		state += ": " + st.Reason
	}
	u.lines = append(u.lines, "forward "+strings.Join(addrs, " ")+" "+state)
	out := []layout.Widget{
		func(gtx layout.Context) layout.Dimensions {
			return layout.Flex{Alignment: layout.Middle}.Layout(gtx,
				layout.Rigid(func(gtx layout.Context) layout.Dimensions { return dot(gtx, c, false, 10) }),
				layout.Rigid(layout.Spacer{Width: 6}.Layout),
				layout.Rigid(s.mono(s.pal.Text, strings.Join(addrs, "   ")).Layout),
				layout.Rigid(layout.Spacer{Width: 10}.Layout),
				layout.Flexed(1, s.label(s.scale.Body, c, state).Layout))
		},
		func(gtx layout.Context) layout.Dimensions {
			return layout.Inset{Left: 16}.Layout(gtx, s.label(s.scale.Small, s.pal.Muted,
				fmt.Sprintf("%d open · %d total · %s in · %s out · %d failed", st.Open, st.Total, bytesText(st.BytesIn), bytesText(st.BytesOut), st.Failures)).Layout)
		},
		func(gtx layout.Context) layout.Dimensions {
			return layout.Inset{Left: 16}.Layout(gtx, func(gtx layout.Context) layout.Dimensions {
				return layout.Flex{Alignment: layout.Middle}.Layout(gtx, buttons...)
			})
		},
	}
	events := st.Events
	if len(events) > 5 {
		events = events[len(events)-5:]
	}
	for _, e := range events {
		line := e.String()
		out = append(out, func(gtx layout.Context) layout.Dimensions {
			return layout.Inset{Left: 16}.Layout(gtx, s.mono(s.pal.Muted, line).Layout)
		})
	}
	return out
}

// addrButtons are the actions on one forwarded address.
type addrButtons struct{ open, copy widget.Clickable }

// bytesText is a byte count for people: "3.1 MB".
func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
