package gui

import (
	"context"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/rorokube/roro/internal/testdbus"
	"github.com/rorokube/roro/themes"
)

// portal is a test settings portal that prefers dark.
type portal struct{ scheme uint32 }

func (p *portal) ReadOne(namespace, key string) (dbus.Variant, *dbus.Error) {
	return dbus.MakeVariant(p.scheme), nil
}

// TestColorSchemeFollowsTheDesktop: the window starts in the desktop's preference read from
// the settings portal, follows a change signalled live, and keeps the user's own pick.
func TestColorSchemeFollowsTheDesktop(t *testing.T) {
	bus := testdbus.Start(t)
	conn, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p := &portal{scheme: 1}
	if err := conn.Export(p, portalPath, portalSettings); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.RequestName(portalName, dbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	client, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if k, ok := ColorScheme(client); !ok || k != themes.Dark {
		t.Fatalf("scheme %q %v, want dark", k, ok)
	}
	s := newScreen(t, &fakeEngine{snap: demoSnapshot()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = FollowColorScheme(ctx, client, s.ui.FollowScheme) }()
	time.Sleep(100 * time.Millisecond) // the match is in place
	emit := func(v uint32) {
		if err := conn.Emit(portalPath, portalSettings+".SettingChanged", appearance, colorSchemeKey, dbus.MakeVariant(v)); err != nil {
			t.Fatal(err)
		}
	}
	emit(1)
	if !s.until(func() bool { return s.ui.Theme() == themes.Dark }) {
		t.Fatal("the window did not follow the desktop to dark")
	}
	emit(2)
	if !s.until(func() bool { return s.ui.Theme() == themes.Light }) {
		t.Fatal("the window did not follow the desktop back to light")
	}
	s.click("Switch to the dark theme") // the user's pick wins from now on
	emit(2)
	time.Sleep(200 * time.Millisecond)
	s.frame()
	if s.ui.Theme() != themes.Dark {
		t.Error("the desktop's preference overrode the user's pick")
	}
}
