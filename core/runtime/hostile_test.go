package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/render/worker"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/internal/raceflag"
	"github.com/rorokube/roro/internal/testfs"
)

// Two canaries: a file outside every workspace, and a secret env value. Neither may appear in
// anything Roro shows (errors included).
const (
	hostileCanary = "CANARY-9a41e7-outside-the-workspace"
	hostileSecret = "hunter2-CANARY-secret"
)

// hostileCase is one hostile workspace: files over a small valid one with an app "web".
type hostileCase struct {
	name   string
	engine string            // web's engine
	files  map[string]string // added to the base workspace; testfs.SymlinkPrefix makes links
	setup  func(t *testing.T, dir string)
	// want are substrings of what Roro reports (each error with its location).
	want []string
}

// TestHostileWorkspaces runs workspaces written as an attacker would: each through load,
// validate and render with one long-lived worker pool, as the window and the git server use
// it. Each must end with its located error within its bound, leave the pool rendering a good
// workspace afterwards, and show neither canary; the test process itself stays small while
// workers hit their memory bound.
func TestHostileWorkspaces(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(root, "outside", "secret.json")
	testfs.Write(t, filepath.Dir(outside), map[string]string{"secret.json": `{"token": "` + hostileCanary + `"}`})
	const timeout = 3 * time.Second
	pool := worker.New(worker.Options{Timeout: timeout})
	defer pool.Close()
	goodDir := filepath.Join(root, "good")
	testfs.Write(t, goodDir, hostileBase("go", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n"))
	good, err := workspace.Load(goodDir)
	if err != nil {
		t.Fatal(err)
	}
	stopped := "was stopped"
	tooDeep := "the templates nest too deep"
	tooBig := "the render used more than 512 MiB of memory"
	tooLong := "the render ran longer than 3s"
	for _, tc := range []hostileCase{
		// Files.
		{name: "values linked outside", files: map[string]string{"apps/web/values/dev.json": testfs.SymlinkPrefix + outside},
			want: []string{"apps/web/values/dev.json is a link to " + outside + ", outside the workspace"}},
		{name: "manifest linked outside", files: map[string]string{"apps/web/manifests/x.yaml": testfs.SymlinkPrefix + outside},
			want: []string{"x.yaml", "outside"}},
		{name: "app.json linked to /dev/zero", files: map[string]string{"apps/web/app.json": testfs.SymlinkPrefix + "/dev/zero"},
			want: []string{"apps/web/app.json is a link to /dev/zero, outside the workspace"}},
		{name: "manifest is a named pipe", setup: func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "apps/web/manifests/pipe.yaml"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"apps/web/manifests/pipe.yaml is not a regular file (a named pipe)"}},
		{name: "manifest not UTF-8", files: map[string]string{"apps/web/manifests/m.yaml": "a: b\nc: \xff\n"},
			want: []string{"apps/web/manifests/m.yaml:2:4: invalid UTF-8"}},
		{name: "members match nothing", files: map[string]string{"roro.json": `{"name": "h", "members": ["aps/*"], "environments": {"dev": {}}}`},
			want: []string{`"aps/*"`}},
		{name: "jinja include outside", engine: "jinja", files: map[string]string{"apps/web/manifests/m.yaml": `{% include "../../../outside/secret.json" %}`},
			want: []string{"manifests/m.yaml", "no template"}},

		// Go templates.
		{name: "go until 1e8", engine: "go", files: manifest(`{{ range until 100000000 }}{{ end }}`), want: []string{"manifests/m.yaml: " + tooBig, stopped}},
		{name: "go loop without end", engine: "go", files: manifest(`{{ range $i := until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}`),
			want: []string{"manifests/m.yaml: " + tooLong}},
		{name: "go include itself", engine: "go", files: manifest(`{{ define "a" }}{{ include "a" . }}{{ end }}{{ include "a" . }}`),
			want: []string{"manifests/m.yaml:1:", `include "a" nested more than 1000 deep`}},
		{name: "go tpl itself", engine: "go", files: manifest(`{{ $t := "{{ tpl $.t . }}" }}{{ tpl $t (dict "t" $t) }}`),
			want: []string{"manifests/m.yaml:1:", "tpl nested more than 1000 deep"}},
		{name: "go repeat", engine: "go", files: manifest(`a: {{ repeat 70000000 "x" }}`), want: []string{"manifests/m.yaml", "passed 64 MiB"}},
		{name: "go output over 64 MiB in two files", engine: "go", files: map[string]string{
			"apps/web/manifests/m.yaml": `a: {{ repeat 40000000 "x" }}`, "apps/web/manifests/n.yaml": `a: {{ repeat 40000000 "x" }}`},
			want: []string{"manifests/n.yaml: the app's templates wrote more than 64 MiB together"}},
		{name: "go DNS lookup", engine: "go", files: manifest(`{{ getHostByName "x.attacker.example" }}`),
			want: []string{"manifests/m.yaml:1:", `function "getHostByName" not defined`}},
		{name: "go host env", engine: "go", files: manifest(`{{ env "HOME" }}`), want: []string{"manifests/m.yaml:1:", `function "env" not defined`}},

		// Handlebars.
		{name: "handlebars partial calls itself", engine: "handlebars", files: map[string]string{
			"apps/web/manifests/_p.yaml": `{{> p}}`, "apps/web/manifests/m.yaml": `{{> p}}`},
			want: []string{"manifests/m.yaml: " + tooDeep, stopped}},
		{name: "handlebars nested each", engine: "handlebars", files: map[string]string{
			"apps/web/values/dev.json":  `{"l": [` + strings.TrimSuffix(strings.Repeat("0,", 2000), ",") + `]}`,
			"apps/web/manifests/m.yaml": `{{#each Values.l}}{{#each @root.Values.l}}{{#each @root.Values.l}}x{{/each}}{{/each}}{{/each}}`},
			want: []string{"manifests/m.yaml: ", stopped}},
		{name: "handlebars typo", engine: "handlebars", files: manifest(`{{#each Values.l}}{{Valuse.image}}{{/each}}`),
			want: []string{"manifests/m.yaml:1:", `(did you mean "Values"?)`}},

		// Jinja.
		{name: "jinja macro calls itself", engine: "jinja", files: manifest(`{% macro m(x) %}{{ m(x) }}{% endmacro %}{{ m(1) }}`),
			want: []string{"manifests/m.yaml: " + tooDeep, stopped}},
		{name: "jinja includes itself", engine: "jinja", files: manifest(`{% include "manifests/m.yaml" %}`), want: []string{"manifests/m.yaml: ", stopped}},
		{name: "jinja range 1e9", engine: "jinja", files: manifest(`{% for i in range(1000000000) %}{% endfor %}`), want: []string{"manifests/m.yaml: ", stopped}},
		{name: "jinja modulo zero", engine: "jinja", files: manifest(`a: {{ 1 % 0 }}`), want: []string{"manifests/m.yaml", "integer divide by zero"}},

		// Secrets, in errors and output.
		{name: "secret in an error", engine: "go", files: manifest(`{{ fail .Env.TOKEN }}`), want: []string{"manifests/m.yaml:1:", "error calling fail: " + render.SecretMask}},
		{name: "secret encoded, as a key, in a Secret", engine: "go", files: manifest(`apiVersion: v1
kind: ConfigMap
metadata:
  name: web
data:
  b64: {{ .Env.TOKEN | b64enc }}
  upper: {{ .Env.TOKEN | upper }}
  json: {{ dict "t" .Env.TOKEN | toJson | quote }}
  {{ .Env.TOKEN }}: key
---
apiVersion: v1
kind: Secret
metadata:
  name: web
stringData:
  hash: {{ .Env.TOKEN | sha256sum }}
`), want: []string{"rendered", "hash: '******'", "'******': key", "b64: '******'", "upper: '******'", `json: '{"t":"******"}'`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(root, strings.ReplaceAll(tc.name, " ", "-"))
			files := hostileBase(tc.engine, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n")
			for k, v := range tc.files {
				files[k] = v
			}
			testfs.Write(t, dir, files)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			if raceflag.Enabled && slices.ContainsFunc(tc.want, func(w string) bool { return strings.Contains(w, tooBig) || strings.Contains(w, tooDeep) }) {
				// The worker's memory and stack bounds are measured without the race detector
				// (ci/test runs this test again without -race): its shadow memory does not fit
				// under them, so a race build's worker gets more room and another bound trips.
				t.Skip("the worker's memory and stack bounds are measured without -race")
			}
			start := time.Now()
			shown := hostileRun(t, pool, dir)
			elapsed := time.Since(start)
			if raceflag.Enabled && strings.Contains(shown, "the render process failed: exit status 66") {
				// The race detector's shadow memory does not fit under the worker's memory
				// bound (ThreadSanitizer exits 66 when its allocation fails); ci/test runs
				// this test again without -race, where the bounds are what is measured.
				t.Skip("the worker's bounds are not measurable under the race detector")
			}
			for _, w := range tc.want {
				if !strings.Contains(shown, w) {
					t.Errorf("Roro showed:\n%s\nwant %q", shown, w)
				}
			}
			// Two renders at most (validate's and render's), each within its bound.
			if limit := 2*timeout + 2*time.Second; elapsed > limit {
				t.Errorf("took %v, over %v", elapsed, limit)
			}
			for _, c := range []string{hostileCanary, hostileSecret} {
				if strings.Contains(shown, c) {
					t.Errorf("Roro showed the canary %q:\n%s", c, shown)
				}
			}
			if _, _, err := RenderOffline(context.Background(), pool, good, "web", Selection{}, nil, nil); err != nil {
				t.Fatalf("the pool no longer renders a good workspace: %v", err)
			}
		})
	}
	if hwm := peakRSS(t); hwm > 256<<20 {
		t.Errorf("the test process peaked at %d MiB of memory: a render's memory must stay in its worker", hwm>>20)
	}
}

// hostileBase is a valid workspace with one app, web, on engine with one manifest.
func hostileBase(engine, manifest string) map[string]string {
	if engine == "" {
		engine = "go"
	}
	return map[string]string{
		"roro.json": `{"name": "h", "members": ["apps/*"], "environments": {"dev": {}}, "defaultEnvironment": "dev"}`,
		"apps/web/app.json": `{"engine": "` + engine + `", "manifests": ["manifests/*.yaml"],
			"values": {"image": "x", "l": [1, 2]},
			"env": [{"name": "TOKEN", "fromHost": "RORO_HOSTILE_TOKEN", "secret": true, "default": "d3fault-token"}]}`,
		"apps/web/manifests/m.yaml": manifest,
	}
}

// manifest replaces web's manifest.
func manifest(src string) map[string]string {
	return map[string]string{"apps/web/manifests/m.yaml": src}
}

// hostileRun loads, validates and renders the workspace in dir as the CLI does, and returns
// everything Roro would show: errors, problems, and the rendered objects as printed.
func hostileRun(t *testing.T, pool render.Executor, dir string) string {
	var shown strings.Builder
	ws, err := workspace.Load(dir)
	if err != nil {
		return err.Error()
	}
	for _, p := range Validate(context.Background(), pool, ws).Problems {
		shown.WriteString(p.Error() + "\n")
	}
	host := func(name string) (string, bool) {
		if name == "RORO_HOSTILE_TOKEN" {
			return hostileSecret, true
		}
		return "", false
	}
	res, env, err := RenderOffline(context.Background(), pool, ws, "web", Selection{}, nil, host)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("render hit the test's deadline: %v", err)
		}
		return shown.String() + err.Error()
	}
	shown.WriteString("rendered\n")
	for _, o := range res.Objects {
		b, err := yaml.Marshal(render.MaskObject(o.Object, env.SecretValues()))
		if err != nil {
			t.Fatal(err)
		}
		shown.Write(b)
	}
	return shown.String()
}

// peakRSS is the most memory this process has held (VmHWM).
func peakRSS(t *testing.T) int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
