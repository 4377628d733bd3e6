package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rorokube/roro/internal/testfs"
)

func TestRenderCommand(t *testing.T) {
	code, out, errOut := runCLI(t, "--workspace", "fixtures/demo", "render", "api", "--env", "staging", "--instance", "pr-42",
		"--set", "replicas=5", "-o", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var list struct {
		Kind  string           `json:"kind"`
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	// What up applies: the three templates' objects and the env Secret that injection adds.
	if list.Kind != "List" || len(list.Items) != 4 {
		t.Fatalf("kind %s with %d items, want a List of 4", list.Kind, len(list.Items))
	}
	var secret, dep map[string]any
	for _, it := range list.Items {
		switch it["kind"] {
		case "Secret":
			secret = it
		case "Deployment":
			dep = it
		}
	}
	if secret == nil || secret["metadata"].(map[string]any)["name"] != "roro-env-api" ||
		secret["stringData"].(map[string]any)["API_TOKEN"] != "******" {
		t.Errorf("the injected env Secret, masked: %v", secret)
	}
	md := dep["metadata"].(map[string]any)
	if md["namespace"] != "api-pr-42" || md["labels"].(map[string]any)["roro.dev/instance"] != "pr-42" {
		t.Errorf("metadata %v", md)
	}
	if r := dep["spec"].(map[string]any)["replicas"]; r != float64(5) {
		t.Errorf("replicas %v, want 5 from --set over staging's 3", r)
	}
	if !strings.Contains(errOut, "DATABASE_HOST, API_TOKEN of api come from cluster objects") {
		t.Errorf("no note about placeholders: %s", errOut)
	}
}

func TestRenderMasksSecretEnv(t *testing.T) {
	dir := testfs.Layout(t, map[string]string{
		"roro.json":       `{"name": "t", "members": ["apps/*"]}`,
		"apps/a/app.json": `{"manifests": ["m.yaml"], "env": [{"name": "TOKEN", "fromHost": "RORO_TEST_TOKEN", "secret": true}]}`,
		"apps/a/m.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  token: {{ .Env.TOKEN }}\n",
	})
	t.Setenv("RORO_TEST_TOKEN", "s3cr3t-value")
	code, out, errOut := runCLI(t, "--workspace", dir, "render", "a")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "s3cr3t-value") || !strings.Contains(out, "token: '******'") {
		t.Errorf("secret not masked:\n%s", out)
	}
	_, out, _ = runCLI(t, "--workspace", dir, "render", "a", "--show-secrets")
	if !strings.Contains(out, "token: s3cr3t-value") {
		t.Errorf("--show-secrets did not show it:\n%s", out)
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"render", "nope"}, exitFail, `no app "nope" in workspace demo (apps: api, db, web)`},
		{[]string{"render", "api", "--env", "prod"}, exitFail, `environment "prod" is not in`},
		{[]string{"render", "api", "--instance", "Bad_Name"}, exitFail, `instance "Bad_Name" of app api is not a valid name`},
		{[]string{"render", "api", "--set", "novalue"}, exitUsage, `--set "novalue": want KEY=VALUE`},
		{[]string{"render", "api", "-f", "missing.json"}, exitUsage, "--values: open missing.json"},
		{[]string{"render", "api", "-o", "table"}, exitUsage, `--output "table" is not supported by roro render`},
	}
	for _, tt := range tests {
		code, _, errOut := runCLI(t, append([]string{"--workspace", "fixtures/demo"}, tt.args...)...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
}

func TestRenderValuesFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "v.yaml")
	if err := os.WriteFile(f, []byte("replicas: 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "--workspace", "fixtures/demo", "render", "web", "-f", f)
	if code != exitOK || !strings.Contains(out, "replicas: 7") {
		t.Fatalf("exit %d, stderr %s\n%s", code, errOut, out)
	}
}

// TestRenderSeveralApps: render with no app renders every app, with several the named ones,
// each object after a "# Source: app/file" line, as helm template prints.
func TestRenderSeveralApps(t *testing.T) {
	code, out, errOut := runCLI(t, "--workspace", "fixtures/demo", "render")
	if code != exitOK {
		t.Fatal(errOut)
	}
	for _, want := range []string{"# Source: api/manifests/deployment.yaml\n", "# Source: web/manifests/web.yaml\n", "# Source: db/manifests/db.yaml\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("render of every app lacks %q", want)
		}
	}
	if docs, sources := strings.Count(out, "\n---\n")+1, strings.Count(out, "# Source: "); docs != sources {
		t.Errorf("%d documents, %d Source lines", docs, sources)
	}
	_, out, _ = runCLI(t, "--workspace", "fixtures/demo", "render", "web", "db")
	if strings.Contains(out, "# Source: api/") || !strings.HasPrefix(out, "# Source: web/") || !strings.Contains(out, "# Source: db/") {
		t.Errorf("render web db:\n%.500s", out)
	}
}
