package render

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
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

// TestSets: the command line's values follow Helm's --set grammar (commas, list indices,
// escaped dots, leading zeros and floats kept as strings, `key=` an empty string), with
// --set-string and --set-file.
func TestSets(t *testing.T) {
	file := filepath.Join(t.TempDir(), "motd.txt")
	if err := os.WriteFile(file, []byte("hello\nworld\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Sets{
		Typed:   []string{"replicas=3,name=x", "image.tag=1.10", "zip=010", "inf=Infinity", "empty=", "debug=true", "x=null", "ports[1].port=80", `a\.b=dotted`},
		Strings: []string{"version=3", "flag=true"},
		Files:   []string{"motd=" + file},
	}.Parse()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"replicas": int64(3), "name": "x", "image": map[string]any{"tag": "1.10"}, "zip": "010", "inf": "Infinity", "empty": "",
		"debug": true, "x": nil, "ports": []any{nil, map[string]any{"port": int64(80)}}, "a.b": "dotted",
		"version": "3", "flag": "true", "motd": "hello\nworld\n",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse =\n%#v\nwant\n%#v", got, want)
	}
	for _, bad := range []Sets{{Typed: []string{"novalue"}}, {Typed: []string{"a[=1"}}, {Files: []string{"k=/nonexistent"}}} {
		if _, err := bad.Parse(); err == nil {
			t.Errorf("%+v was accepted", bad)
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

// TestValuesFileStrict: a --values file with a key given twice is refused, not read with
// the last one.
func TestValuesFileStrict(t *testing.T) {
	p := filepath.Join(t.TempDir(), "v.yaml")
	if err := os.WriteFile(p, []byte("replicas: 1\nimage: x\nreplicas: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadValuesFile(p); err == nil || !strings.Contains(err.Error(), `"replicas" already set`) {
		t.Errorf("err = %v", err)
	}
}
