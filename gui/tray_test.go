package gui

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/internal/testdbus"
)

// TestTrayOverDBus: the tray registers with the desktop's watcher on a private session bus;
// its menu (read over com.canonical.dbusmenu, as the desktop reads it) says how the apps are
// and lists them; a click on an app's Up or Down, sent as the desktop sends it, calls the
// engine; Open Roro and Quit call their hooks.
func TestTrayOverDBus(t *testing.T) {
	bus := testdbus.Start(t)
	eng := &fakeEngine{snap: demoSnapshot()}
	opened := make(chan struct{}, 1)
	tray := NewTray(eng, TrayOptions{OnOpen: func() { opened <- struct{}{} }, OnQuit: func() {}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tray.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	item, ok := bus.WaitItem(10 * time.Second)
	if !ok {
		t.Fatal("the tray never registered with the watcher")
	}
	var root testdbus.MenuNode
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		root, err = bus.Menu(item)
		if _, ok := root.Find("api", "Up"); ok && err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the menu never listed api's Up: %+v %v", root, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(root.Children) == 0 || root.Children[0].Label != "api: failed" {
		t.Errorf("first line %+v, want the answer: api: failed", root.Children)
	}
	click := func(path ...string) {
		t.Helper()
		n, ok := root.Find(path...)
		if !ok {
			t.Fatalf("no %v in the menu %+v", path, root)
		}
		if err := bus.Click(item, n.ID); err != nil {
			t.Fatal(err)
		}
	}
	click("web", "Up")
	click("db", "Down")
	click("Open Roro")
	deadline = time.Now().Add(5 * time.Second)
	for len(eng.Calls()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	calls := eng.Calls()
	slices.Sort(calls) // each menu item has its own goroutine: clicks may land in any order
	if got := strings.Join(calls, "|"); got != "down db instance=|up web instance=" {
		t.Errorf("engine calls %q", got)
	}
	select {
	case <-opened:
	case <-time.After(5 * time.Second):
		t.Error("Open Roro did not open the window")
	}
	if tip, err := bus.Property(item, "ToolTip"); err != nil || !strings.Contains(tip.String(), "Roro: api: failed") {
		t.Errorf("tooltip %v %v", tip, err)
	}
}

// TestSummary: the tray's first line answers "is everything OK?" truthfully.
func TestSummary(t *testing.T) {
	healthy := demoSnapshot()
	for i := range healthy.Apps {
		healthy.Apps[i].Health = runtime.Healthy
	}
	healthy.Operations = nil
	idle := demoSnapshot()
	for i := range idle.Apps {
		idle.Apps[i].Health = runtime.NotRunning
	}
	unreachable := demoSnapshot()
	unreachable.Connections[0] = runtime.ConnectionView{Environment: "dev", State: runtime.Unreachable, Reason: "connection refused"}
	working := demoSnapshot()
	working.Operations = append(working.Operations, runtime.OperationView{ID: 4, Kind: runtime.OpUp, State: runtime.OpRunning,
		Targets: []runtime.InstanceKey{{App: "web", Instance: "default"}}})
	for _, tt := range []struct {
		snap   *runtime.Snapshot
		line   string
		health runtime.Health
	}{
		{demoSnapshot(), "api: failed", runtime.Failed},
		{healthy, "All 3 running apps healthy", runtime.Healthy},
		{idle, "No app running", runtime.NotRunning},
		{unreachable, "Cluster unreachable: connection refused", runtime.Failed},
		{working, "Working: up web", runtime.Progressing},
	} {
		line, h := Summary(tt.snap)
		if line != tt.line || h != tt.health {
			t.Errorf("Summary %q %s, want %q %s", line, h, tt.line, tt.health)
		}
	}
	if len(trayIcon(runtime.Healthy)) == 0 || string(trayIcon(runtime.Healthy)) == string(trayIcon(runtime.Failed)) {
		t.Error("the icons of healthy and failed are the same")
	}
}

// TestTrayShowsAWaitingKey: a key refused by the git server shows in the tray's menu, and
// the item opens the window (where the Sharing page approves it).
func TestTrayShowsAWaitingKey(t *testing.T) {
	bus := testdbus.Start(t)
	snap := demoSnapshot()
	snap.Sharing = runtime.SharingView{Available: true, Refused: []runtime.SharingKey{{Fingerprint: "SHA256:bob", Address: "10.0.0.7:50022"}}}
	opened := make(chan struct{}, 1)
	tray := NewTray(&fakeEngine{snap: snap}, TrayOptions{OnOpen: func() { opened <- struct{}{} }, OnQuit: func() {}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tray.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	item, ok := bus.WaitItem(10 * time.Second)
	if !ok {
		t.Fatal("the tray never registered with the watcher")
	}
	const label = "A key is waiting for approval (Sharing)"
	var n testdbus.MenuNode
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		root, err := bus.Menu(item)
		if n, ok = root.Find(label); ok && err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the menu never showed %q: %+v %v", label, root, err)
		}
	}
	if err := bus.Click(item, n.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-opened:
	case <-time.After(5 * time.Second):
		t.Error("the waiting key's item did not open the window")
	}
}
