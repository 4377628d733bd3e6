package render

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/rorokube/roro/core/workspace"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// goldenEnv stands in for env that would come from the host and the cluster.
var goldenEnv = map[string]string{
	"FEATURE_FLAGS": "search,beta-ui",
	"DEVELOPER":     "golden",
	"DATABASE_HOST": "db.golden.svc",
	"API_TOKEN":     "golden-token",
}

// TestGolden renders every instance of every app of the demo workspace in every environment
// it may run in (api on go templates, web on handlebars, db on jinja) and compares the
// objects with testdata/golden. Run `go test ./core/render -update` to accept a change.
func TestGolden(t *testing.T) {
	ws, err := workspace.Load(filepath.Join("..", "..", "fixtures", "demo"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, app := range ws.Apps {
		for _, inst := range append([]string{workspace.DefaultInstance}, app.InstanceNames()...) {
			for _, env := range ws.EnvironmentNames() {
				if pinned := app.File.Instances[inst].Environment; pinned != "" && pinned != env {
					continue
				}
				name := strings.Join([]string{app.Name, inst, env}, ".") + ".yaml"
				seen[name] = true
				t.Run(name, func(t *testing.T) {
					res, err := App(context.Background(), InProcess{}, ws, app, Request{Environment: env, Instance: inst, Env: goldenEnv})
					if err != nil {
						t.Fatal(err)
					}
					var got strings.Builder
					for i, o := range res.Objects {
						if i > 0 {
							got.WriteString("---\n")
						}
						b, err := yaml.Marshal(o.Object)
						if err != nil {
							t.Fatal(err)
						}
						got.Write(b)
					}
					path := filepath.Join("testdata", "golden", name)
					if *update {
						if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
							t.Fatal(err)
						}
						if err := os.WriteFile(path, []byte(got.String()), 0o644); err != nil {
							t.Fatal(err)
						}
					}
					want, err := os.ReadFile(path)
					if err != nil {
						t.Fatalf("%v (run with -update to create it)", err)
					}
					if got.String() != string(want) {
						t.Errorf("render differs from %s (run with -update to accept):\n%s", path, lineDiff(string(want), got.String()))
					}
				})
			}
		}
	}
	// A golden file nothing renders any more is stale.
	entries, _ := os.ReadDir(filepath.Join("testdata", "golden"))
	for _, e := range entries {
		if !seen[e.Name()] {
			t.Errorf("testdata/golden/%s matches no instance of the demo workspace: delete it", e.Name())
		}
	}
	if len(seen) < 9 {
		t.Errorf("only %d renders; the demo workspace should give 9 (3 apps, 2 environments, 2 extra api instances)", len(seen))
	}
}

// lineDiff lists the lines that differ, for a readable failure.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}
