package runtime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/internal/benchkit"
	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testfs"
)

// fiftyObjects is an app of 50 objects: 10 Deployments, 10 Services, 30 ConfigMaps.
func fiftyObjects() string {
	var b strings.Builder
	for i := range 10 {
		fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-%[1]d
spec:
  replicas: 1
  selector:
    matchLabels: {app: web-%[1]d}
  template:
    metadata:
      labels: {app: web-%[1]d}
    spec:
      containers:
      - name: web
        image: example.invalid/web:{{ .Values.tag }}
---
apiVersion: v1
kind: Service
metadata:
  name: web-%[1]d
spec:
  selector: {app: web-%[1]d}
  ports:
  - {port: 80}
`, i)
	}
	for i := range 30 {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-%d\ndata:\n  tag: \"{{ .Values.tag }}\"\n", i)
	}
	return b.String()
}

// up50Pairs is how many pairs of samples BenchmarkUp50 takes: one roro up and one kubectl
// run each, the order alternated.
const up50Pairs = 5

// BenchmarkUp50 compares, on the same rendered manifests, `roro up` of a 50-object app
// (apply and wait until healthy) with `kubectl apply --server-side -f` followed by
// `kubectl wait --for=condition=Available` on its Deployments, both as fresh processes (the
// roro binary, built once: benchkit.Roro). It takes up50Pairs pairs, the order alternated
// (roro first, then kubectl first, …), each sample in fresh namespaces on a quiet cluster
// (the last sample's namespaces gone first; teardown is not timed), after one untimed round
// of each. It reports each side's min, median and max in ms and those of the ratio
// roro/kubectl of each pair. Target: roro at most half kubectl's time.
func BenchmarkUp50(b *testing.B) {
	tc := testcluster.Get(b)
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		b.Skip("kubectl not on PATH (ci/bench puts the test cluster's there)")
	}
	roro := benchkit.Roro(b)
	dir := testfs.Layout(b, map[string]string{
		"roro.json":                   `{"name": "bench", "members": ["apps/*"]}`,
		"apps/fifty/app.json":         `{"manifests": ["manifests/*.yaml"], "values": {"tag": "1"}}`,
		"apps/fifty/manifests/a.yaml": fiftyObjects(),
	})
	// The objects for kubectl, rendered the way roro renders them (namespace set per sample).
	ws, err := workspace.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	res, err := render.App(context.Background(), render.InProcess{}, ws, ws.App("fifty"), render.Request{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	env := append(os.Environ(), "XDG_STATE_HOME="+b.TempDir())
	run := func(name string, args ...string) {
		cmd := exec.Command(name, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
	}
	gone := func(ns string) {
		_ = tc.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		_ = testcluster.Poll(ctx, 100*time.Millisecond, func() (bool, error) {
			_, err := tc.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
	}
	sample := 0
	// up times one side in a fresh namespace, then removes it (untimed).
	up := map[string]func() time.Duration{
		"roro": func() time.Duration {
			ns := testcluster.UniqueName(fmt.Sprintf("bench-roro-%d", sample))
			app := fmt.Sprintf(`{"namespace": %q, "manifests": ["manifests/*.yaml"], "values": {"tag": "1"}}`, ns)
			if err := os.WriteFile(filepath.Join(dir, "apps/fifty/app.json"), []byte(app), 0o644); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			run(roro, "--kubeconfig", tc.Kubeconfig, "--workspace", dir, "up")
			d := time.Since(start)
			gone(ns)
			return d
		},
		"kubectl": func() time.Duration {
			ns := testcluster.UniqueName(fmt.Sprintf("bench-kubectl-%d", sample))
			var manifest strings.Builder
			manifest.WriteString("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + ns + "\n")
			for _, o := range res.Objects {
				c := o.DeepCopy()
				c.SetNamespace(ns)
				y, err := yaml.Marshal(c.Object)
				if err != nil {
					b.Fatal(err)
				}
				manifest.WriteString("---\n")
				manifest.Write(y)
			}
			path := filepath.Join(dir, "kubectl.yaml")
			if err := os.WriteFile(path, []byte(manifest.String()), 0o644); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			run(kubectl, "--kubeconfig", tc.Kubeconfig, "apply", "--server-side", "-f", path)
			run(kubectl, "--kubeconfig", tc.Kubeconfig, "wait", "--for=condition=Available", "deployment", "--all", "-n", ns, "--timeout=120s")
			d := time.Since(start)
			gone(ns)
			return d
		},
	}
	// One untimed round first: the binaries' pages, the server's discovery and caches.
	up["roro"]()
	up["kubectl"]()
	var roroTimes, kubectlTimes []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := range up50Pairs {
			sample++
			order := []string{"roro", "kubectl"}
			if !benchkit.ABBA(i) {
				order = []string{"kubectl", "roro"}
			}
			got := map[string]time.Duration{}
			for _, side := range order {
				got[side] = up[side]()
			}
			b.Logf("pair %d (%s first): roro %s, kubectl %s", i, order[0], got["roro"].Round(time.Millisecond), got["kubectl"].Round(time.Millisecond))
			roroTimes, kubectlTimes = append(roroTimes, got["roro"]), append(kubectlTimes, got["kubectl"])
		}
	}
	b.StopTimer()
	benchkit.Report(b, "roro-ms", benchkit.Ms(roroTimes))
	benchkit.Report(b, "kubectl-ms", benchkit.Ms(kubectlTimes))
	benchkit.Report(b, "roro/kubectl", benchkit.Ratios(roroTimes, kubectlTimes))
	b.ReportMetric(float64(len(roroTimes)), "pairs")
}
