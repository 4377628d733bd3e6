package workspace

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rorokube/roro/internal/testfs"
)

func TestLoadDemo(t *testing.T) {
	ws, err := Load(filepath.Join("..", "..", "fixtures", "demo"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range ws.Apps {
		names = append(names, a.Name)
	}
	if got := strings.Join(names, ","); got != "api,db,web" {
		t.Errorf("apps %s, want api,db,web", got)
	}
	api := ws.App("api")
	if api == nil || api.Namespace() != "demo-api" || strings.Join(api.InstanceNames(), ",") != "blue,pr-42" {
		t.Fatalf("api app: %+v", api)
	}
	if api.File.Instances["blue"].Suffix != "-blue" {
		t.Errorf("blue instance suffix %q", api.File.Instances["blue"].Suffix)
	}
	if ref := api.File.Env[2].FromObject; ref == nil || ref.Kind != "DevEnvironment" || ref.Environments["staging"].Name != "staging" {
		t.Errorf("DATABASE_HOST source: %+v", ref)
	}
}

func TestLoadErrorsSayWhere(t *testing.T) {
	const root = `{"name": "w", "members": ["apps/*"]}`
	const app = `{"manifests": ["m.yaml"]}`
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"unknown field with position", map[string]string{"roro.json": "{\n  \"name\": \"w\",\n  \"memebrs\": []\n}"},
			[]string{"roro.json:3:", `unknown field "memebrs"`}},
		{"wrong type with position", map[string]string{"roro.json": root, "apps/a/app.json": "{\n \"manifests\": \"m.yaml\"\n}"},
			[]string{"apps/a/app.json:2:", "cannot unmarshal string"}},
		{"syntax error", map[string]string{"roro.json": "{\"name\": \"w\",, }"}, []string{"roro.json:1:"}},
		{"no name", map[string]string{"roro.json": `{"members": ["apps/*"]}`}, []string{`"name" is required`}},
		{"no members", map[string]string{"roro.json": `{"name": "w"}`}, []string{`"members" is empty`}},
		{"member escapes", map[string]string{"roro.json": `{"name": "w", "members": ["../x"]}`}, []string{"leaves the workspace"}},
		{"bad app name", map[string]string{"roro.json": root, "apps/Bad_Name/app.json": app}, []string{`"Bad_Name" is not a valid Kubernetes name`}},
		{"unknown engine", map[string]string{"roro.json": root, "apps/a/app.json": `{"engine": "mustache", "manifests": []}`}, []string{`engine "mustache" is unknown`}},
		{"missing dependency", map[string]string{"roro.json": root, "apps/a/app.json": `{"manifests": [], "dependsOn": ["b"]}`}, []string{`dependsOn names "b"`}},
		{"duplicate app", map[string]string{"roro.json": root, "apps/a/app.json": `{"name": "x", "manifests": []}`, "apps/b/app.json": `{"name": "x", "manifests": []}`},
			[]string{`app name "x" is already used`}},
		{"bad default environment", map[string]string{"roro.json": `{"name": "w", "members": ["apps/*"], "defaultEnvironment": "prod", "environments": {"dev": {}}}`},
			[]string{`defaultEnvironment "prod" is not in "environments" (have dev)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(testfs.Layout(t, tt.files))
			if err == nil {
				t.Fatal("loaded without error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadListsEveryProblem(t *testing.T) {
	dir := testfs.Layout(t, map[string]string{
		"roro.json":       `{"name": "w", "members": ["apps/*"]}`,
		"apps/a/app.json": `{"manifests": [], "dependsOn": ["nope"]}`,
		"apps/b/app.json": `{"engine": "erb", "manifests": []}`,
	})
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), `"erb"`) {
		t.Fatalf("want both problems, got %v", err)
	}
}
