package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rorokube/roro/internal/testfs"
)

// goodWorkspace is a small valid workspace each bad-input case breaks in one place.
func goodWorkspace() map[string]string {
	return map[string]string{
		"roro.json": `{
  "name": "t",
  "members": ["apps/*"],
  "defaultEnvironment": "dev",
  "environments": { "dev": {}, "staging": {} }
}
`,
		"apps/db/app.json": `{
  "engine": "jinja",
  "manifests": ["manifests/*.yaml"],
  "values": { "size": "1Gi" }
}
`,
		"apps/db/manifests/db.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: db\ndata:\n  size: {{ Values.size }}\n",
		"apps/api/app.json": `{
  "engine": "go",
  "manifests": ["manifests/*.yaml"],
  "dependsOn": ["db"],
  "values": { "replicas": 1 },
  "instances": { "blue": { "suffix": "-blue" } }
}
`,
		"apps/api/manifests/api.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api{{ .Instance.Suffix }}\ndata:\n  replicas: \"{{ .Values.replicas }}\"\n",
		"apps/web/app.json": `{
  "engine": "handlebars",
  "manifests": ["manifests/*.yaml"],
  "values": { "title": "hi" }
}
`,
		"apps/web/manifests/web.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  title: {{Values.title}}\n",
	}
}

// treeHash fingerprints every file and link under dir, to prove a command wrote nothing.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h.Write([]byte(rel + "\x00" + d.Type().String() + "\x00"))
		if d.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestGoodWorkspaceValidates(t *testing.T) {
	dir := testfs.Layout(t, goodWorkspace())
	code, out, errOut := runCLI(t, "--workspace", dir, "validate")
	if code != exitOK || !strings.Contains(out, "3 apps, 2 environments, 8 instance renders, 8 objects") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// TestBadInputs breaks the good workspace in one place per case and checks that `roro
// validate` fails, says where (file and line, or file and field) and how to fix it, and
// writes nothing.
func TestBadInputs(t *testing.T) {
	tests := []struct {
		name   string
		change map[string]string // files to add or replace; "" deletes
		want   []string          // substrings of stderr: the location, then the hint
	}{
		{"malformed JSON", map[string]string{"roro.json": "{\n  \"name\": \"t\",\n  \"members\": [\"apps/*\"],,\n}\n"},
			[]string{"roro.json:3:", "invalid character ','"}},
		{"trailing data", map[string]string{"roro.json": `{"name": "t", "members": ["apps/*"]} {}`},
			[]string{"roro.json:1:", "unexpected data after the JSON object"}},
		{"unknown field in roro.json", map[string]string{"roro.json": "{\n  \"name\": \"t\",\n  \"membres\": [\"apps/*\"]\n}\n"},
			[]string{"roro.json:3:3:", `unknown field "membres"`, `did you mean "members"?`}},
		{"unknown field in app.json", map[string]string{"apps/api/app.json": "{\n  \"manifest\": [\"manifests/*.yaml\"]\n}\n"},
			[]string{"apps/api/app.json:2:3:", `unknown field "manifest"`, `did you mean "manifests"?`}},
		{"unknown nested field", map[string]string{"apps/api/app.json": "{\n  \"manifests\": [\"manifests/*.yaml\"],\n  \"instances\": { \"blue\": { \"sufix\": \"-b\" } }\n}\n"},
			[]string{"apps/api/app.json:3:", `unknown field "sufix"`, `did you mean "suffix"?`}},
		{"wrong type", map[string]string{"apps/api/app.json": "{\n  \"manifests\": [\"manifests/*.yaml\"],\n  \"dependsOn\": \"db\"\n}\n"},
			[]string{"apps/api/app.json:3:", "cannot unmarshal string", "dependsOn"}},
		{"wrong type of a bool", map[string]string{"apps/api/app.json": "{\n  \"manifests\": [\"manifests/*.yaml\"],\n  \"injectEnv\": \"yes\"\n}\n"},
			[]string{"apps/api/app.json:3:", "injectEnv"}},
		{"missing workspace name", map[string]string{"roro.json": `{"members": ["apps/*"]}`},
			[]string{"roro.json", `"name" is required`}},
		{"member leaves the workspace", map[string]string{"roro.json": `{"name": "t", "members": ["../elsewhere/*"]}`},
			[]string{"roro.json", "leaves the workspace", "relative to it"}},
		{"bad app name", map[string]string{"apps/Bad_App/app.json": `{"manifests": ["m.yaml"]}`, "apps/Bad_App/m.yaml": "x: 1\n"},
			[]string{"apps/Bad_App/app.json", `"Bad_App" is not a valid Kubernetes name`, "lower case"}},
		{"app name too long", map[string]string{"apps/api/app.json": `{"name": "` + strings.Repeat("a", 64) + `", "manifests": ["manifests/*.yaml"]}`},
			[]string{"apps/api/app.json", "must be no more than 63 characters"}},
		{"duplicate app name", map[string]string{"apps/web/app.json": `{"name": "api", "manifests": ["manifests/*.yaml"]}`},
			[]string{"app.json", `app name "api" is already used by`, "rename one of them"}},
		{"unknown dependency", map[string]string{"apps/api/app.json": `{"manifests": ["manifests/*.yaml"], "dependsOn": ["dbb"]}`},
			[]string{"apps/api/app.json", `dependsOn names "dbb"`, `did you mean "db"?`}},
		{"dependency cycle", map[string]string{"apps/db/app.json": `{"engine": "jinja", "manifests": ["manifests/*.yaml"], "values": {"size": "1"}, "dependsOn": ["api"]}`},
			[]string{"app.json", "dependsOn has a cycle: api → db → api", "remove one of these dependencies"}},
		{"self dependency", map[string]string{"apps/web/app.json": `{"engine": "handlebars", "manifests": ["manifests/*.yaml"], "dependsOn": ["web"]}`},
			[]string{"apps/web/app.json", "cycle: web → web"}},
		{"glob matches nothing", map[string]string{"apps/web/app.json": `{"engine": "handlebars", "manifests": ["manifests/*.yml"]}`},
			[]string{"apps/web/app.json", `"manifests/*.yml" matches no file`}},
		{"no manifests", map[string]string{"apps/web/app.json": `{"engine": "handlebars", "manifests": []}`},
			[]string{"apps/web/app.json", `"manifests" is empty`, `["manifests/*.yaml"]`}},
		{"glob leaves the app folder", map[string]string{"apps/web/app.json": `{"engine": "handlebars", "manifests": ["../db/manifests/*.yaml"]}`},
			[]string{"apps/web/app.json", "leaves the app folder", "use a path inside it"}},
		{"bad forward port", map[string]string{"apps/api/app.json": `{"manifests": ["manifests/*.yaml"], "forwards": [{"target": "service/api", "ports": ["http:80"]}]}`},
			[]string{"apps/api/app.json:1:", `'http:80' does not match pattern`, "at forwards.0.ports.0", "app.schema.json"}},
		{"bad forward target", map[string]string{"apps/api/app.json": `{"manifests": ["manifests/*.yaml"], "forwards": [{"target": "api", "ports": ["80"]}]}`},
			[]string{"apps/api/app.json:1:", `'api' does not match pattern '^(service|svc|deployment|deploy|statefulset|sts|pod|po)/.+$'`, "at forwards.0.target"}},
		{"forward port out of range", map[string]string{"apps/api/app.json": `{"manifests": ["manifests/*.yaml"], "forwards": [{"target": "service/api", "ports": ["8080:70000"]}]}`},
			[]string{"apps/api/app.json: forwards[0]:", "remote port 70000 is out of range"}},
		{"symlink leaves the app folder", map[string]string{"apps/web/manifests/link.yaml": "symlink:../../db/manifests/db.yaml"},
			[]string{"apps/web/app.json", "link.yaml is a link to", "outside the app folder", "copy the file in"}},
		{"unknown engine", map[string]string{"apps/web/app.json": `{"engine": "handlebar", "manifests": ["manifests/*.yaml"]}`},
			[]string{"apps/web/app.json", `engine "handlebar" is unknown`, `did you mean "handlebars"?`}},
		{"bad namespace", map[string]string{"apps/web/app.json": `{"engine": "handlebars", "namespace": "Web_NS", "manifests": ["manifests/*.yaml"]}`},
			[]string{"apps/web/app.json", `namespace "Web_NS" is not a valid namespace name`}},
		{"bad default environment", map[string]string{"roro.json": `{"name": "t", "members": ["apps/*"], "defaultEnvironment": "stagin", "environments": {"dev": {}, "staging": {}}}`},
			[]string{"roro.json", `defaultEnvironment "stagin" is not in "environments"`, "dev, staging"}},
		{"values file for an unknown environment", map[string]string{"apps/web/values/prod.json": `{}`},
			[]string{"apps/web/values/prod.json", `"prod" is not an environment`, "rename the file"}},
		{"malformed values file", map[string]string{"apps/web/values/dev.json": "{\n  \"title\": \n}"},
			[]string{"apps/web/values/dev.json:3:", "invalid character '}'"}},
		{"bad instance name", map[string]string{"apps/api/app.json": `{"manifests": ["manifests/*.yaml"], "instances": {"PR_42": {}}}`},
			[]string{"apps/api/app.json", `instances.PR_42: "PR_42" is not a valid instance name`}},
		{"instance named default", map[string]string{"apps/api/app.json": `{"manifests": ["manifests/*.yaml"], "instances": {"default": {}}}`},
			[]string{"apps/api/app.json", `instances.default`, "choose another name"}},
		{"instance with unknown environment", map[string]string{"apps/api/app.json": `{"manifests": ["manifests/*.yaml"], "instances": {"pr-1": {"environment": "stagign"}}}`},
			[]string{"apps/api/app.json", `instances.pr-1.environment: "stagign" is not an environment`, `did you mean "staging"?`}},
		{"instance with suffix and namespace", map[string]string{"apps/api/app.json": `{"manifests": ["manifests/*.yaml"], "instances": {"pr-1": {"suffix": "-x", "namespace": "y"}}}`},
			[]string{"apps/api/app.json", `give either "suffix"`, "not both"}},
		{"env source with two origins", map[string]string{"apps/api/app.json": `{"manifests": ["manifests/*.yaml"], "env": [{"name": "A", "value": "1", "fromHost": "HOME"}]}`},
			[]string{"apps/api/app.json: env[0] (A)", `give exactly one of "value", "fromHost" and "fromObject"`}},
		{"bad forward hold", map[string]string{"apps/api/app.json": `{"manifests": ["manifests/*.yaml"], "forwards": [{"target": "service/api", "ports": ["8080:80"], "hold": "soon"}]}`},
			[]string{"apps/api/app.json", `forwards[0].hold: "soon" is not a positive duration`}},
		{"bad env name", map[string]string{"apps/api/app.json": `{"manifests": ["manifests/*.yaml"], "env": [{"name": "1BAD", "value": "1"}]}`},
			[]string{"apps/api/app.json: env[0] (1BAD)", "not a valid variable name"}},
		{"go template syntax error", map[string]string{"apps/api/manifests/api.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name \n"},
			[]string{"app api: manifests/api.yaml:5: unclosed action started at manifests/api.yaml:4"}},
		{"go missing value", map[string]string{"apps/api/manifests/api.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api\ndata:\n  x: {{ .Values.nope }}\n"},
			[]string{"app api: manifests/api.yaml:6:15:", "value .Values.nope is missing", "--set"}},
		{"go required", map[string]string{"apps/api/manifests/api.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api\ndata:\n  x: {{ required \"set image.tag\" .Values.tag }}\n"},
			[]string{"app api: manifests/api.yaml:6:", `"tag"`}},
		{"handlebars syntax error", map[string]string{"apps/web/manifests/web.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  x: {{#if Values.title}}\n"},
			[]string{"app web: manifests/web.yaml:", "syntax error"}},
		{"handlebars missing value", map[string]string{"apps/web/manifests/web.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  x: {{Values.nope}}\n"},
			[]string{"app web: manifests/web.yaml:6:", "value {{Values.nope}} is missing", "--set"}},
		{"jinja syntax error", map[string]string{"apps/db/manifests/db.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: db\n{% if Values.size %}\n"},
			[]string{"app db: manifests/db.yaml", "endif"}},
		{"jinja missing value", map[string]string{"apps/db/manifests/db.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: db\ndata:\n  x: {{ Values.nope }}\n"},
			[]string{"app db: manifests/db.yaml:6:", "value Values.nope is missing", "--set"}},
		{"rendered YAML is invalid", map[string]string{"apps/api/manifests/api.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api\n   bad: indent\n"},
			[]string{"app api: manifests/api.yaml: document 1 at line 1", "not valid YAML", "roro render"}},
		{"object without kind", map[string]string{"apps/api/manifests/api.yaml": "apiVersion: v1\nmetadata:\n  name: api\n"},
			[]string{"manifests/api.yaml: document 1", "kind missing", "every object needs apiVersion, kind and metadata.name"}},
		{"object without name, second document", map[string]string{"apps/api/manifests/api.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n"},
			[]string{"manifests/api.yaml: document 2 at line 6", "metadata.name missing"}},
		{"generateName", map[string]string{"apps/api/manifests/api.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: api-\n"},
			[]string{"manifests/api.yaml: document 1", "generateName is not supported", "set metadata.name"}},
		{"duplicate object", map[string]string{"apps/api/manifests/more.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api{{ .Instance.Suffix }}\n"},
			[]string{"app api instance default: manifests/more.yaml: ConfigMap", "also defined in manifests/api.yaml", "defined once per instance"}},
		{"name too long after suffix", map[string]string{"apps/api/app.json": `{"manifests": ["manifests/*.yaml"], "values": {"replicas": 1}, "instances": {"blue": {"suffix": "-` + strings.Repeat("b", 250) + `"}}}`},
			[]string{"app api instance blue: manifests/api.yaml: ConfigMap", "name is 254 characters long", "use a shorter suffix"}},
		{"service name too long after suffix", map[string]string{
			"apps/api/manifests/api.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: api-service-for-the-backend{{ .Instance.Suffix }}\n",
			"apps/api/app.json":           `{"manifests": ["manifests/*.yaml"], "instances": {"blue": {"suffix": "-blue-green-canary-release-candidate-7"}}}`},
			[]string{"app api instance blue: manifests/api.yaml: Service", "must be no more than 63 characters", "use a shorter suffix"}},
	}
	if len(tests) < 30 {
		t.Fatalf("only %d cases", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := goodWorkspace()
			for p, c := range tt.change {
				files[p] = c
			}
			dir := testfs.Layout(t, files)
			before := treeHash(t, dir)
			code, out, errOut := runCLI(t, "--workspace", dir, "validate")
			if code != exitFail {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, exitFail, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if after := treeHash(t, dir); after != before {
				t.Error("validate changed the workspace")
			}
		})
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	files := goodWorkspace()
	files["apps/api/manifests/api.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api\ndata:\n  x: {{ .Values.nope }}\n"
	files["apps/web/manifests/web.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  x: {{Values.nope}}\n"
	code, _, errOut := runCLI(t, "--workspace", testfs.Layout(t, files), "validate")
	if code != exitFail || !strings.Contains(errOut, "app api:") || !strings.Contains(errOut, "app web:") {
		t.Fatalf("exit %d, want both problems:\n%s", code, errOut)
	}
}

func TestInitLeavesNothingOnFailure(t *testing.T) {
	dir := testfs.Layout(t, map[string]string{"keep.txt": "mine"})
	before := treeHash(t, dir)
	code, _, errOut := runCLI(t, "init", dir)
	if code != exitFail || !strings.Contains(errOut, "is not empty") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if treeHash(t, dir) != before {
		t.Error("init changed a non-empty folder")
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	for _, e := range entries {
		if strings.Contains(e.Name(), "roro-init") {
			t.Errorf("init left %s behind", e.Name())
		}
	}
}

func TestInitCreatesAValidWorkspaceWithACommit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "My Stack")
	code, out, errOut := runCLI(t, "init", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "Created workspace my-stack") {
		t.Errorf("stdout: %s", out)
	}
	if code, out, errOut := runCLI(t, "--workspace", dir, "validate"); code != exitOK {
		t.Fatalf("the new workspace does not validate (exit %d): %s %s", code, out, errOut)
	}
	for _, f := range []string{".roro/schema/app.schema.json", ".roro/schema/workspace.schema.json", ".gitignore", ".git/HEAD"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	head, _ := os.ReadFile(filepath.Join(dir, ".git", "HEAD"))
	if strings.TrimSpace(string(head)) != "ref: refs/heads/main" {
		t.Errorf("HEAD %q", head)
	}
}
