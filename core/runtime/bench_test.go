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

// BenchmarkUp50 compares, in one run on the same rendered manifests, `roro up` of a 50-object
// app (apply and wait until healthy) with `kubectl apply --server-side -f` followed by
// `kubectl wait --for=condition=Available` on its Deployments. Each iteration uses fresh
// namespaces; teardown is not timed. Target: roro at most half kubectl's time.
func BenchmarkUp50(b *testing.B) {
	tc := testcluster.Get(b)
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		b.Skip("kubectl not on PATH (ci/bench puts the test cluster's there)")
	}
	dir := testfs.Layout(b, map[string]string{
		"roro.json":                   `{"name": "bench", "members": ["apps/*"]}`,
		"apps/fifty/app.json":         `{"manifests": ["manifests/*.yaml"], "values": {"tag": "1"}}`,
		"apps/fifty/manifests/a.yaml": fiftyObjects(),
	})
	ctx := context.Background()
	var roroTime, kubectlTime time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		ns := fmt.Sprintf("bench-roro-%d-%d", time.Now().UnixNano()%1e6, i)
		app := fmt.Sprintf(`{"namespace": %q, "manifests": ["manifests/*.yaml"], "values": {"tag": "1"}}`, ns)
		if err := os.WriteFile(filepath.Join(dir, "apps/fifty/app.json"), []byte(app), 0o644); err != nil {
			b.Fatal(err)
		}
		ws, err := workspace.Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		rt := kubeEngine(b, tc, ws)
		b.StartTimer()
		start := time.Now()
		if err := runUp(ctx, rt, UpRequest{}); err != nil {
			b.Fatal(err)
		}
		roroTime += time.Since(start)
		b.StopTimer()
		_ = rt.Close()

		// The same objects, rendered the same way, for kubectl, into their own namespace.
		kns := strings.Replace(ns, "roro", "kubectl", 1)
		res, err := render.App(context.Background(), render.InProcess{}, ws, ws.App("fifty"), render.Request{})
		if err != nil {
			b.Fatal(err)
		}
		var manifest strings.Builder
		manifest.WriteString("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + kns + "\n")
		for _, o := range res.Objects {
			c := o.DeepCopy()
			c.SetNamespace(kns)
			y, _ := yaml.Marshal(c.Object)
			manifest.WriteString("---\n")
			manifest.Write(y)
		}
		path := filepath.Join(dir, "kubectl.yaml")
		if err := os.WriteFile(path, []byte(manifest.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start = time.Now()
		if out, err := exec.Command(kubectl, "--kubeconfig", tc.Kubeconfig, "apply", "--server-side", "-f", path).CombinedOutput(); err != nil {
			b.Fatalf("kubectl apply: %v\n%s", err, out)
		}
		if out, err := exec.Command(kubectl, "--kubeconfig", tc.Kubeconfig, "wait", "--for=condition=Available",
			"deployment", "--all", "-n", kns, "--timeout=120s").CombinedOutput(); err != nil {
			b.Fatalf("kubectl wait: %v\n%s", err, out)
		}
		kubectlTime += time.Since(start)
		b.StopTimer()
		// Each run starts on a quiet cluster: the last run's namespaces are gone first.
		for _, n := range []string{ns, kns} {
			_ = tc.Kube.CoreV1().Namespaces().Delete(ctx, n, metav1.DeleteOptions{})
		}
		for _, n := range []string{ns, kns} {
			_ = testcluster.Poll(ctx, 100*time.Millisecond, func() (bool, error) {
				_, err := tc.Kube.CoreV1().Namespaces().Get(ctx, n, metav1.GetOptions{})
				return apierrors.IsNotFound(err), nil
			})
		}
		b.StartTimer()
	}
	roroMS := float64(roroTime.Milliseconds()) / float64(b.N)
	kubectlMS := float64(kubectlTime.Milliseconds()) / float64(b.N)
	b.ReportMetric(roroMS, "roro-ms/up")
	b.ReportMetric(kubectlMS, "kubectl-ms/up")
	b.ReportMetric(roroMS/kubectlMS, "roro/kubectl")
}
