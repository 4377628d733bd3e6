package render

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestEnginesAgree renders the same ConfigMap written for each engine (context names,
// a helper file, a loop, a conditional, quoting of characters HTML would escape) and
// checks all three produce the same object.
func TestEnginesAgree(t *testing.T) {
	ctx := &Context{
		Values: map[string]any{
			"tier":  "backend",
			"debug": true,
			"ports": []any{map[string]any{"name": "http", "number": 8080}, map[string]any{"name": "grpc", "number": 9090}},
		},
		Env:         map[string]string{"TOKEN": "t&k<n>"},
		App:         AppInfo{Name: "shop", Namespace: "shop"},
		Instance:    InstanceInfo{Name: "pr-7", Suffix: "-pr-7", Namespace: "shop"},
		Environment: EnvironmentInfo{Name: "staging"},
		Workspace:   WorkspaceInfo{Name: "demo"},
	}
	wantData, err := os.ReadFile(filepath.Join("testdata", "engines", "want.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := yaml.Unmarshal(wantData, &want); err != nil {
		t.Fatal(err)
	}
	for _, engine := range Engines {
		t.Run(engine, func(t *testing.T) {
			files := readDir(t, filepath.Join("testdata", "engines", engine))
			out, err := Execute(engine, files, ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 1 || out[0].File != "app.yaml" {
				t.Fatalf("outputs %+v, want only app.yaml (helpers render nothing)", out)
			}
			var got map[string]any
			if err := yaml.Unmarshal(out[0].Data, &got); err != nil {
				t.Fatalf("output is not YAML: %v\n%s", err, out[0].Data)
			}
			gotY, _ := yaml.Marshal(got)
			wantY, _ := yaml.Marshal(want)
			if string(gotY) != string(wantY) {
				t.Errorf("%s rendered\n%s\nwant\n%s\n(raw output:\n%s)", engine, gotY, wantY, out[0].Data)
			}
		})
	}
}

// readDir reads every file of dir as templates named by their base name, sorted.
func readDir(t *testing.T, dir string) []File {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []File
	for _, e := range entries {
		src, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, File{Name: e.Name(), Source: src})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files
}
