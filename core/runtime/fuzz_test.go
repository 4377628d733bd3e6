package runtime

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/render/worker"
	"github.com/rorokube/roro/internal/testfs"
)

// Links a fuzzed workspace may carry, chosen by FuzzWorkspace's link byte.
var fuzzLinks = []func(t *testing.T, dir, outside string){
	func(*testing.T, string, string) {},
	func(t *testing.T, dir, outside string) {
		fuzzLink(t, outside, filepath.Join(dir, "apps/web/values/dev.json"))
	},
	func(t *testing.T, dir, outside string) {
		fuzzLink(t, outside, filepath.Join(dir, "apps/web/manifests/x.yaml"))
	},
	func(t *testing.T, dir, _ string) {
		fuzzLink(t, "/dev/zero", filepath.Join(dir, "apps/web/values/dev.json"))
	},
	func(t *testing.T, dir, _ string) {
		fuzzLink(t, "../manifests/m.yaml", filepath.Join(dir, "apps/web/manifests/_h.yaml"))
	},
	func(t *testing.T, dir, _ string) {
		fuzzLink(t, "../../..", filepath.Join(dir, "apps/web/manifests/up"))
	},
	func(t *testing.T, dir, _ string) {
		if err := syscall.Mkfifo(filepath.Join(dir, "apps/web/manifests/p.yaml"), 0o644); err != nil {
			t.Fatal(err)
		}
	},
}

func fuzzLink(t *testing.T, target, at string) {
	if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(at)
	if err := os.Symlink(target, at); err != nil {
		t.Fatal(err)
	}
}

// FuzzWorkspace builds whole workspaces from fuzzed parts (web's engine, app.json, two
// templates, a values file, and a link or a named pipe) and runs each through load,
// validate and render on one worker pool. No input may crash or hang Roro, or make it show
// the file outside the workspace or the secret. ci/fuzz runs it for five minutes; plain
// `go test` runs the seeds.
func FuzzWorkspace(f *testing.F) {
	demo := func(p string) string {
		b, err := os.ReadFile(filepath.Join("../../fixtures/demo", p))
		if err != nil {
			f.Fatal(err)
		}
		return string(b)
	}
	// The demo's apps, alone in a workspace: without their dependencies.
	demoApp := func(name string) string {
		var a map[string]any
		if err := json.Unmarshal([]byte(demo("apps/"+name+"/app.json")), &a); err != nil {
			f.Fatal(err)
		}
		delete(a, "dependsOn")
		b, err := json.Marshal(a)
		if err != nil {
			f.Fatal(err)
		}
		return string(b)
	}
	app := `{"manifests": ["manifests/*.yaml"], "values": {"image": "x", "l": [1, 2]},
	 "env": [{"name": "TOKEN", "fromHost": "RORO_HOSTILE_TOKEN", "secret": true}]}`
	f.Add(uint8(0), demoApp("api"), demo("apps/api/manifests/deployment.yaml"), demo("apps/api/manifests/service.yaml"), demo("apps/api/values/dev.json"), uint8(0))
	f.Add(uint8(1), demoApp("web"), demo("apps/web/manifests/web.yaml"), "", `{}`, uint8(0))
	f.Add(uint8(2), demoApp("db"), demo("apps/db/manifests/db.yaml"), "", `{}`, uint8(0))
	f.Add(uint8(0), app, "a: {{ .Env.TOKEN | b64enc }}\n{{ fail .Env.TOKEN }}", "", `{}`, uint8(1))
	f.Add(uint8(0), app, `{{ include "x" . }}{{ define "x" }}{{ include "x" . }}{{ end }}`, "", `{}`, uint8(0))
	f.Add(uint8(1), app, "{{> h}}", "{{> h}}", `{"a": 1}`, uint8(4))
	f.Add(uint8(2), app, `{% include "up/outside/secret.json" %}`, `{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}`, `{}`, uint8(5))
	f.Add(uint8(2), app, `{{ 1 % 0 }}`, "", `{}`, uint8(0))
	f.Add(uint8(0), app, `{{ range until 100000000 }}{{ end }}`, "", `{}`, uint8(0))
	f.Add(uint8(0), app, "a: b", "", `{}`, uint8(2))
	f.Add(uint8(0), app, "a: b", "", `{}`, uint8(3))
	f.Add(uint8(0), app, "a: b", "", `{}`, uint8(6))
	root := f.TempDir()
	outside := filepath.Join(root, "outside", "secret.json")
	testfs.Write(f, filepath.Dir(outside), map[string]string{"secret.json": `{"token": "` + hostileCanary + `"}`})
	const timeout = 2 * time.Second
	pool := worker.New(worker.Options{Timeout: timeout, Memory: 256 << 20})
	f.Cleanup(func() { pool.Close() })
	f.Fuzz(func(t *testing.T, engine uint8, appJSON, tpl, helper, values string, link uint8) {
		dir := t.TempDir()
		files := map[string]string{
			"roro.json":                  `{"name": "f", "members": ["apps/*"], "environments": {"dev": {"values": {"logLevel": "debug", "domain": "dev.localhost"}}, "staging": {"values": {"logLevel": "info", "domain": "s.example.com"}}}, "defaultEnvironment": "dev"}`,
			"apps/web/app.json":          withEngine(appJSON, render.Engines[int(engine)%len(render.Engines)]),
			"apps/web/manifests/m.yaml":  tpl,
			"apps/web/manifests/_h.yaml": helper,
			"apps/web/values/dev.json":   values,
		}
		testfs.Write(t, dir, files)
		fuzzLinks[int(link)%len(fuzzLinks)](t, dir, outside)
		start := time.Now()
		shown := hostileRun(t, pool, dir)
		// Three renders at most (validate's two environments, then render's).
		if d := time.Since(start); d > 3*timeout+5*time.Second {
			t.Fatalf("took %v: a bound did not hold\n%.2000s", d, shown)
		}
		for _, c := range []string{hostileCanary, hostileSecret} {
			if strings.Contains(shown, c) {
				t.Fatalf("showed the canary %q:\n%.4000s", c, shown)
			}
		}
	})
}

// withEngine sets "engine" in an app.json that is a JSON object; anything else is left for
// the loader to refuse.
func withEngine(appJSON, engine string) string {
	body, ok := strings.CutPrefix(strings.TrimSpace(appJSON), "{")
	if !ok {
		return appJSON
	}
	if strings.Contains(body, `"engine"`) {
		return appJSON
	}
	if strings.HasPrefix(strings.TrimSpace(body), "}") {
		return `{"engine": "` + engine + `"` + body
	}
	return `{"engine": "` + engine + `",` + body
}
