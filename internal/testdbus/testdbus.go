// Package testdbus gives tests a private D-Bus session bus and a StatusNotifierWatcher on it
// (the desktop's tray host, as far as a tray item knows), and reads and clicks a tray item's
// menu over com.canonical.dbusmenu, as a desktop does.
package testdbus

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// Bus is a private session bus with a watcher on it.
type Bus struct {
	// Address is the bus's address, also set in DBUS_SESSION_BUS_ADDRESS for the test.
	Address string
	conn    *dbus.Conn
	w       *watcher
}

// Start runs dbus-daemon for the test, points DBUS_SESSION_BUS_ADDRESS at it, and owns
// org.kde.StatusNotifierWatcher there. Without dbus-daemon the test fails when CI=true and
// skips otherwise.
func Start(t testing.TB) *Bus {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dbus-daemon is required (CI=true): ci/deps installs it")
		}
		t.Skip("dbus-daemon is not installed; ci/deps installs it")
	}
	cmd := exec.Command("dbus-daemon", "--session", "--nofork", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon: %v", err)
	}
	b := &Bus{Address: strings.TrimSpace(addr), w: &watcher{}}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", b.Address)
	if b.conn, err = dbus.Connect(b.Address); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.conn.Close() })
	if err := b.conn.Export(b.w, "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher"); err != nil {
		t.Fatal(err)
	}
	if reply, err := b.conn.RequestName("org.kde.StatusNotifierWatcher", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own the watcher name: %v %v", reply, err)
	}
	return b
}

// watcher records the items that register.
type watcher struct {
	mu    sync.Mutex
	items []string
}

// RegisterStatusNotifierItem is the watcher's D-Bus method an item calls.
func (w *watcher) RegisterStatusNotifierItem(sender dbus.Sender, path string) *dbus.Error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.items = append(w.items, string(sender))
	return nil
}

// WaitItem waits until a tray item registers and returns its bus name.
func (b *Bus) WaitItem(timeout time.Duration) (string, bool) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b.w.mu.Lock()
		n := len(b.w.items)
		var last string
		if n > 0 {
			last = b.w.items[n-1]
		}
		b.w.mu.Unlock()
		if last != "" {
			return last, true
		}
	}
	return "", false
}

// MenuNode is one item of a tray menu.
type MenuNode struct {
	ID       int32
	Label    string
	Children []MenuNode
}

func decode(v []any) MenuNode {
	n := MenuNode{ID: v[0].(int32)}
	if props, ok := v[1].(map[string]dbus.Variant); ok {
		if l, ok := props["label"].Value().(string); ok {
			n.Label = l
		}
	}
	for _, c := range v[2].([]dbus.Variant) {
		n.Children = append(n.Children, decode(c.Value().([]any)))
	}
	return n
}

// Find follows labels down the menu; a label matches exactly or as "LABEL — more".
func (n MenuNode) Find(path ...string) (MenuNode, bool) {
	if len(path) == 0 {
		return n, true
	}
	for _, c := range n.Children {
		if c.Label == path[0] || strings.HasPrefix(c.Label, path[0]+" — ") {
			return c.Find(path[1:]...)
		}
	}
	return MenuNode{}, false
}

// Menu reads item's whole menu.
func (b *Bus) Menu(item string) (MenuNode, error) {
	var rev uint32
	var layout []any
	call := b.conn.Object(item, "/StatusNotifierItem/menu").Call("com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{})
	if call.Err != nil {
		return MenuNode{}, call.Err
	}
	if err := call.Store(&rev, &layout); err != nil {
		return MenuNode{}, err
	}
	return decode(layout), nil
}

// Click sends a click on the menu item id, as the desktop does.
func (b *Bus) Click(item string, id int32) error {
	return b.conn.Object(item, "/StatusNotifierItem/menu").Call("com.canonical.dbusmenu.Event", 0, id, "clicked", dbus.MakeVariant(""), uint32(0)).Err
}

// Property reads one of the item's org.kde.StatusNotifierItem properties.
func (b *Bus) Property(item, name string) (dbus.Variant, error) {
	return b.conn.Object(item, "/StatusNotifierItem").GetProperty("org.kde.StatusNotifierItem." + name)
}
