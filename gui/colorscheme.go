package gui

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"

	"github.com/rorokube/roro/themes"
)

// The freedesktop settings portal, where the desktop says whether it prefers dark or light.
const (
	portalName      = "org.freedesktop.portal.Desktop"
	portalPath      = "/org/freedesktop/portal/desktop"
	portalSettings  = "org.freedesktop.portal.Settings"
	appearance      = "org.freedesktop.appearance"
	colorSchemeKey  = "color-scheme"
	preferDark      = 1
	preferLightSide = 2
)

// schemeKind turns the portal's color-scheme (0 no preference, 1 dark, 2 light) into a
// palette; ok is false for no preference.
func schemeKind(v any) (themes.Kind, bool) {
	for {
		vv, ok := v.(dbus.Variant)
		if !ok {
			break
		}
		v = vv.Value() // the old Read wraps the value in one more variant
	}
	n, ok := v.(uint32)
	switch {
	case !ok:
		return "", false
	case n == preferDark:
		return themes.Dark, true
	case n == preferLightSide:
		return themes.Light, true
	}
	return "", false
}

// ColorScheme reads the desktop's light or dark preference from the settings portal on conn;
// ok is false when the desktop states none (or has no portal).
func ColorScheme(conn *dbus.Conn) (themes.Kind, bool) {
	obj := conn.Object(portalName, portalPath)
	var v dbus.Variant
	if err := obj.Call(portalSettings+".ReadOne", 0, appearance, colorSchemeKey).Store(&v); err != nil {
		if err := obj.Call(portalSettings+".Read", 0, appearance, colorSchemeKey).Store(&v); err != nil {
			return "", false
		}
	}
	return schemeKind(v)
}

// FollowColorScheme calls onChange with the desktop's preference each time it changes, until
// ctx ends.
func FollowColorScheme(ctx context.Context, conn *dbus.Conn, onChange func(themes.Kind)) error {
	if err := conn.AddMatchSignal(dbus.WithMatchInterface(portalSettings), dbus.WithMatchMember("SettingChanged"),
		dbus.WithMatchObjectPath(portalPath)); err != nil {
		return fmt.Errorf("follow the desktop's colour scheme: %w", err)
	}
	signals := make(chan *dbus.Signal, 8)
	conn.Signal(signals)
	defer conn.RemoveSignal(signals)
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-signals:
			if s == nil || s.Name != portalSettings+".SettingChanged" || len(s.Body) < 3 {
				continue
			}
			if ns, _ := s.Body[0].(string); ns != appearance {
				continue
			}
			if key, _ := s.Body[1].(string); key != colorSchemeKey {
				continue
			}
			if k, ok := schemeKind(s.Body[2]); ok {
				onChange(k)
			}
		}
	}
}
