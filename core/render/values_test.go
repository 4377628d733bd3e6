package render

import (
	"reflect"
	"testing"

	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/internal/testfs"
)

func TestMerge(t *testing.T) {
	base := map[string]any{"a": 1, "m": map[string]any{"x": 1, "y": 2}, "list": []any{1, 2}}
	over := map[string]any{"b": 2, "m": map[string]any{"y": 3, "z": 4}, "list": []any{9}}
	got := Merge(base, over)
	want := map[string]any{"a": 1, "b": 2, "m": map[string]any{"x": 1, "y": 3, "z": 4}, "list": []any{9}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Merge = %v, want %v", got, want)
	}
	if base["m"].(map[string]any)["y"] != 2 {
		t.Error("Merge modified its input")
	}
}

func TestParseSet(t *testing.T) {
	got, err := ParseSet([]string{"image.tag=1.2", "replicas=3", "debug=true", "ratio=0.5", "name=web", "empty=", "x=null"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"image": map[string]any{"tag": 1.2}, "replicas": int64(3), "debug": true, "ratio": 0.5, "name": "web", "empty": "", "x": nil}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseSet = %#v\nwant %#v", got, want)
	}
	for _, bad := range []string{"novalue", "a..b=1", ".a=1", "=1"} {
		if _, err := ParseSet([]string{bad}); err == nil {
			t.Errorf("ParseSet(%q) accepted it", bad)
		}
	}
}

// TestValueLayers checks the documented order, lowest first: app values < values/<env>.json
// < the environment's values in roro.json < instance values < command line.
func TestValueLayers(t *testing.T) {
	dir := testfs.Layout(t, map[string]string{
		"roro.json": `{"name": "w", "members": ["apps/*"], "defaultEnvironment": "dev",
		"environments": {"dev": {"values": {"l3": "env", "l4": "env", "l5": "env"}}}}`,
		"apps/a/app.json": `{"manifests": ["m.yaml"],
		"values": {"l1": "app", "l2": "app", "l3": "app", "l4": "app", "l5": "app"},
		"instances": {"i": {"values": {"l4": "instance", "l5": "instance"}}}}`,
		"apps/a/values/dev.json": `{"l2": "envfile", "l3": "envfile", "l4": "envfile", "l5": "envfile"}`,
		"apps/a/m.yaml":          "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
	})
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := LayeredValues(ws, ws.App("a"), "i", "dev", map[string]any{"l5": "cli"})
	want := map[string]any{"l1": "app", "l2": "envfile", "l3": "env", "l4": "instance", "l5": "cli"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("layers = %v, want %v", got, want)
	}
}
