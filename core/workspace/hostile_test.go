package workspace

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rorokube/roro/internal/testfs"
)

// canary is a file outside every workspace whose content must never reach Roro.
const canary = "CANARY-5f2d1c-never-read"

// TestHostileFiles: a workspace's files are untrusted. Links out of the workspace, named pipes,
// devices, oversized files, invalid UTF-8 and member globs that match nothing are each refused
// with an error that names the file (and line and column where there is one), within a
// second, and nothing outside the workspace is read.
func TestHostileFiles(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret.json")
	if err := os.WriteFile(outside, []byte(`{"token": "`+canary+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	base := func() map[string]string {
		return map[string]string{
			"roro.json":                 `{"name": "h", "members": ["apps/*"], "environments": {"dev": {}}}`,
			"apps/web/app.json":         `{"manifests": ["manifests/*.yaml"]}`,
			"apps/web/manifests/m.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n",
		}
	}
	tests := []struct {
		name  string
		files map[string]string
		setup func(t *testing.T, dir string)
		want  []string
	}{
		{"values linked outside", map[string]string{"apps/web/values/dev.json": testfs.SymlinkPrefix + outside}, nil,
			[]string{"apps/web/values/dev.json is a link to " + outside + ", outside the workspace"}},
		{"app.json linked outside", map[string]string{"apps/web/app.json": testfs.SymlinkPrefix + outside}, nil,
			[]string{"apps/web/app.json is a link to", "outside the workspace"}},
		{"values linked to /dev/zero", map[string]string{"apps/web/values/dev.json": testfs.SymlinkPrefix + "/dev/zero"}, nil,
			[]string{"apps/web/values/dev.json is a link to /dev/zero, outside the workspace"}},
		{"values file is a named pipe", nil, func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, "apps/web/values"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(filepath.Join(dir, "apps/web/values/dev.json"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"apps/web/values/dev.json is not a regular file (a named pipe)"}},
		{"manifest is a named pipe", nil, func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "apps/web/manifests/pipe.yaml"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"apps/web/manifests/pipe.yaml is not a regular file (a named pipe)"}},
		{"oversized values", map[string]string{"apps/web/values/dev.json": `{"a": "` + strings.Repeat("x", MaxFileSize) + `"}`}, nil,
			[]string{"apps/web/values/dev.json is 4194313 bytes, over the 4 MiB a workspace file may hold"}},
		{"invalid UTF-8", map[string]string{"apps/web/app.json": "{\n  \"group\": \"b\xffad\",\n  \"manifests\": [\"manifests/*.yaml\"]\n}\n"}, nil,
			[]string{"apps/web/app.json:2:14: invalid UTF-8 (byte 0xff)"}},
		{"environment name that is no label value", map[string]string{"roro.json": `{"name": "h", "members": ["apps/*"], "environments": {"Prod Env!": {}}}`}, nil,
			[]string{`roro.json: environment "Prod Env!" is not a valid name`}},
		{"forward address that is no address", map[string]string{"apps/web/app.json": `{"manifests": ["manifests/*.yaml"], "forwards": [{"target": "service/web", "ports": ["80"], "address": "my laptop"}]}`}, nil,
			[]string{`apps/web/app.json: forwards[0].address: "my laptop" is not an IP address`}},
		{"jsonPath that does not parse", map[string]string{"apps/web/app.json": `{"manifests": ["manifests/*.yaml"], "env": [{"name": "T", "fromObject": {"apiVersion": "v1", "kind": "Secret", "name": "s", "jsonPath": "{.data[}"}}]}`}, nil,
			[]string{`apps/web/app.json: env[0] (T): fromObject.jsonPath "{.data[}" is not a JSONPath expression`}},
		{"members match nothing", map[string]string{"roro.json": `{"name": "h", "members": ["app/*"]}`}, nil,
			[]string{`roro.json: member "app/*" matches no app folder`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := base()
			for k, v := range tt.files {
				files[k] = v
			}
			dir := testfs.Layout(t, files)
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			done := make(chan error, 1)
			start := time.Now()
			go func() { _, err := Load(dir); done <- err }()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Load did not return within 5 s")
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Load took %s", d)
			}
			if err == nil {
				t.Fatal("a hostile workspace loaded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("the error shows the canary from outside the workspace: %v", err)
			}
		})
	}
}

// TestStrictAsTheSchemas: what Go's JSON decoder would take silently is refused at its
// place: a known field in another case, a key given twice (roro.json, app.json, values), and
// anything else the files' JSON Schemas reject that the loader's own checks let through.
func TestStrictAsTheSchemas(t *testing.T) {
	base := func() map[string]string {
		return map[string]string{
			"roro.json":                "{\n  \"name\": \"s\",\n  \"members\": [\"apps/*\"],\n  \"environments\": {\"dev\": {}}\n}\n",
			"apps/web/app.json":        "{\n  \"manifests\": [\"m.yaml\"]\n}\n",
			"apps/web/m.yaml":          "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n",
			"apps/web/values/dev.json": "{\n  \"a\": 1\n}\n",
		}
	}
	for _, tt := range []struct {
		name, file, content, want string
	}{
		{"a field in another case", "roro.json", "{\n  \"name\": \"s\",\n  \"Members\": [\"apps/*\"],\n  \"environments\": {\"dev\": {}}\n}\n",
			`roro.json:3:3: additional properties 'Members' not allowed: field names are case-sensitive, write "members"`},
		{"a key twice in roro.json", "roro.json", "{\n  \"name\": \"s\",\n  \"members\": [\"apps/*\"],\n  \"name\": \"t\"\n}\n",
			`roro.json:4:3: key "name" is given twice in the same object (first at 2:3)`},
		{"a key twice in app.json", "apps/web/app.json", "{\n  \"manifests\": [\"m.yaml\"],\n  \"values\": {\"r\": 1,\n    \"r\": 2}\n}\n",
			`apps/web/app.json:4:5: key "r" is given twice in the same object (first at 3:14)`},
		{"a key twice in values", "apps/web/values/dev.json", "{\"a\": 1, \"a\": 2}", `apps/web/values/dev.json:1:10: key "a" is given twice`},
		{"an engine in another case", "apps/web/app.json", "{\n  \"manifests\": [\"m.yaml\"],\n  \"Engine\": \"go\"\n}\n",
			`apps/web/app.json:3:3: additional properties 'Engine' not allowed: field names are case-sensitive, write "engine"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			files := base()
			files[tt.file] = tt.content
			dir := testfs.Layout(t, files)
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v\nwant %q", err, tt.want)
			}
		})
	}
}
