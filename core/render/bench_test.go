package render_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/render/worker"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/internal/benchkit"
	"github.com/rorokube/roro/internal/testfs"
)

// benchManifests are the ten kinds every generated app renders. Each body reads the app's
// values through dot, so the same text serves roro (dot = .Values) and Helm
// (dot = .Values.appN); both run text/template with sprig.
var benchManifests = map[string]string{
	"deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  labels:
{{ include "labels" . | indent 4 }}
spec:
  replicas: {{ .replicas }}
  selector:
    matchLabels:
      app: {{ .name }}
  template:
    metadata:
      labels:
        app: {{ .name }}
    spec:
      containers:
      - name: main
        image: {{ .image }}:{{ .tag | default "latest" }}
        env:
{{- range $k, $v := .env }}
        - name: {{ $k }}
          value: {{ $v | quote }}
{{- end }}
        resources:
{{ toYaml .resources | indent 10 }}
`,
	"service.yaml": `apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}
  labels:
{{ include "labels" . | indent 4 }}
spec:
  selector:
    app: {{ .name }}
  ports:
{{- range .ports }}
  - name: {{ .name }}
    port: {{ .port }}
{{- end }}
`,
	"configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .name }}-config
data:
{{- range $k, $v := .env }}
  {{ $k }}: {{ $v | quote }}
{{- end }}
`,
	"secret.yaml": `apiVersion: v1
kind: Secret
metadata:
  name: {{ .name }}-secret
stringData:
  token: {{ printf "%s-%s" .name .tag | b64enc | quote }}
`,
	"serviceaccount.yaml": `apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .name }}
  labels:
{{ include "labels" . | indent 4 }}
`,
	"role.yaml": `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .name }}
rules:
- apiGroups: [""]
  resources: ["configmaps", "secrets"]
  verbs: ["get", "list", "watch"]
`,
	"rolebinding.yaml": `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .name }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .name }}
subjects:
- kind: ServiceAccount
  name: {{ .name }}
`,
	"ingress.yaml": `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ .name }}
spec:
  rules:
  - host: {{ .name }}.{{ .domain }}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: {{ .name }}
            port:
              number: {{ (index .ports 0).port }}
`,
	"hpa.yaml": `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .name }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .name }}
  minReplicas: {{ .replicas }}
  maxReplicas: {{ mul .replicas 4 }}
`,
	"pdb.yaml": `apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app: {{ .name }}
`,
}

const benchHelpers = `{{- define "labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/version: {{ .tag | quote }}
tier: {{ .tier }}
{{- end -}}
`

func benchValues(i int) string {
	return fmt.Sprintf(`{"name": "app-%d", "replicas": %d, "image": "registry.example/app-%d", "tag": "1.%d.0",
 "tier": "backend", "domain": "example.com",
 "env": {"LOG_LEVEL": "info", "REGION": "eu-%d", "FEATURE": "on"},
 "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}],
 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}}`, i, 1+i%3, i, i, i%4)
}

// writeBenchWorkspace lays out a workspace of n apps with the ten manifests each.
func writeBenchWorkspace(b *testing.B, dir string, n int) {
	b.Helper()
	files := map[string]string{}
	write := func(p, s string) { files[p] = s }
	write("roro.json", `{"name": "bench", "members": ["apps/*"], "defaultEnvironment": "dev", "environments": {"dev": {}}}`)
	for i := range n {
		app := fmt.Sprintf("apps/app-%d/", i)
		write(app+"app.json", fmt.Sprintf(`{"manifests": ["manifests/*"], "values": %s}`, benchValues(i)))
		write(app+"manifests/_helpers.tpl", benchHelpers)
		for name, body := range benchManifests {
			write(app+"manifests/"+name, "{{- with .Values }}\n"+body+"{{- end }}\n")
		}
	}
	testfs.Write(b, dir, files)
}

// writeBenchChart lays out the equivalent Helm chart: the same n × 10 manifests in one chart,
// each reading its app's values under .Values.appN.
func writeBenchChart(b *testing.B, dir string, n int) {
	b.Helper()
	files := map[string]string{}
	write := func(p, s string) { files[p] = s }
	write("Chart.yaml", "apiVersion: v2\nname: bench\nversion: 0.1.0\n")
	write("templates/_helpers.tpl", benchHelpers)
	var values strings.Builder
	values.WriteString("{")
	for i := range n {
		if i > 0 {
			values.WriteString(",\n")
		}
		fmt.Fprintf(&values, `"app%d": %s`, i, benchValues(i))
		for name, body := range benchManifests {
			write(fmt.Sprintf("templates/app%d-%s", i, name), fmt.Sprintf("{{- with .Values.app%d }}\n", i)+body+"{{- end }}\n")
		}
	}
	values.WriteString("}\n")
	write("values.yaml", values.String())
	testfs.Write(b, dir, files)
}

// renderWorkspace loads, validates and renders every app of the workspace in dir, running
// the templates with x.
func renderWorkspace(b *testing.B, dir string, x render.Executor) int {
	ws, err := workspace.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	results, errs := render.Workspace(context.Background(), x, ws, render.Request{})
	if len(errs) > 0 {
		b.Fatal(errs[0])
	}
	objects := 0
	for _, r := range results {
		objects += len(r.Objects)
	}
	return objects
}

// workspacePairs is how many pairs of samples BenchmarkWorkspace500 takes: one render with
// worker processes and one in-process each, the order alternated.
const workspacePairs = 4

// BenchmarkWorkspace500 loads, validates and renders a generated workspace of 500 apps with
// 10 manifests each on the go engine (target: under 1 s), as Roro does: templates run in
// bounded worker processes, a fresh pool each time as a CLI command starts one. In the
// same run, workspacePairs pairs with the order alternated, it renders with the templates
// in-process, and reports the min, median and max of each in ms and of the worker
// processes' cost (workers/inproc, pair by pair). It runs in this process and prints
// nothing: BenchmarkRenderVsHelm compares the `roro render` command with `helm template`.
func BenchmarkWorkspace500(b *testing.B) {
	const apps = 500
	dir := b.TempDir()
	writeBenchWorkspace(b, filepath.Join(dir, "ws"), apps)
	var pooled, inproc []time.Duration
	manifests := 0
	withPool := func() {
		pool := worker.New(worker.Options{})
		defer pool.Close()
		start := time.Now()
		manifests = renderWorkspace(b, filepath.Join(dir, "ws"), pool)
		pooled = append(pooled, time.Since(start))
	}
	inProcess := func() {
		start := time.Now()
		if n := renderWorkspace(b, filepath.Join(dir, "ws"), render.InProcess{}); n != manifests {
			b.Fatalf("in-process render made %d objects, the workers %d", n, manifests)
		}
		inproc = append(inproc, time.Since(start))
	}
	b.ResetTimer()
	for range b.N {
		for i := range workspacePairs {
			if benchkit.ABBA(i) {
				withPool()
				inProcess()
			} else {
				inProcess()
				withPool()
			}
		}
	}
	b.StopTimer()
	if manifests != apps*len(benchManifests) {
		b.Fatalf("rendered %d objects, want %d", manifests, apps*len(benchManifests))
	}
	benchkit.Report(b, "workers-ms", benchkit.Ms(pooled))
	benchkit.Report(b, "inproc-ms", benchkit.Ms(inproc))
	benchkit.Report(b, "workers/inproc", benchkit.Ratios(pooled, inproc))
	b.ReportMetric(float64(len(pooled)), "pairs")
	b.ReportMetric(float64(manifests), "manifests")
}

// renderPairs is how many pairs of samples BenchmarkRenderVsHelm takes on all cores, and
// again on one: one `roro render` and one `helm template` each, the order alternated.
const renderPairs = 5

// BenchmarkRenderVsHelm compares, as a user runs them, `roro render --show-secrets` of the
// generated workspace of 500 apps × 10 manifests (every app; YAML, as helm prints it, secrets
// included) with `helm template` on the equivalent chart (the same 5,000 templates in one
// chart; RORO_HELM names the helm binary, which ci/bench builds). Both are fresh processes
// (roro built once: benchkit.Roro) writing their YAML to /dev/null. After one untimed run of
// each that checks both print the 5,000 objects, it takes renderPairs pairs, the order
// alternated, and reports each side's min, median and max in ms and those of the ratio
// roro/helm of each pair; then the same pinned to one core (taskset -c 0 on both: roro's
// template workers are its children and inherit the affinity), as 1core-….
func BenchmarkRenderVsHelm(b *testing.B) {
	const apps = 500
	helm := os.Getenv("RORO_HELM")
	if helm == "" {
		b.Skip("RORO_HELM is not set: no helm to compare with (ci/bench builds helm and sets it)")
	}
	roro := benchkit.Roro(b)
	dir := b.TempDir()
	ws, chart := filepath.Join(dir, "ws"), filepath.Join(dir, "chart")
	writeBenchWorkspace(b, ws, apps)
	writeBenchChart(b, chart, apps)
	env := append(os.Environ(), "XDG_STATE_HOME="+b.TempDir(), "HELM_CACHE_HOME="+b.TempDir(),
		"HELM_CONFIG_HOME="+b.TempDir(), "HELM_DATA_HOME="+b.TempDir())
	commands := map[string][]string{
		"roro": {roro, "--workspace", ws, "render", "--show-secrets"},
		"helm": {helm, "template", "bench", chart},
	}
	// run runs one side, pinned to cpu 0 when one is set, with its output to w (nil: /dev/null).
	run := func(side string, oneCore bool, w io.Writer) time.Duration {
		args := commands[side]
		if oneCore {
			args = append([]string{"taskset", "-c", "0"}, args...)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = env
		cmd.Stdout = w
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		if err != nil {
			b.Fatalf("%s: %v\n%.2000s", strings.Join(args, " "), err, stderr.String())
		}
		return d
	}
	// The untimed check, which also warms the binaries' pages and the files' cache.
	for side := range commands {
		var out strings.Builder
		run(side, false, &out)
		if n := strings.Count(out.String(), "\nkind: "); n != apps*len(benchManifests) {
			b.Fatalf("%s printed %d objects, want %d", side, n, apps*len(benchManifests))
		}
	}
	_, err := exec.LookPath("taskset")
	pinned := err == nil
	if !pinned {
		b.Log("taskset is not installed: no one-core comparison")
	}
	samples := func(oneCore bool) (roroTimes, helmTimes []time.Duration) {
		for i := range renderPairs {
			order := []string{"roro", "helm"}
			if !benchkit.ABBA(i) {
				order = []string{"helm", "roro"}
			}
			got := map[string]time.Duration{}
			for _, side := range order {
				got[side] = run(side, oneCore, nil)
			}
			b.Logf("one core %v, pair %d (%s first): roro %s, helm %s", oneCore, i, order[0], got["roro"].Round(time.Millisecond), got["helm"].Round(time.Millisecond))
			roroTimes, helmTimes = append(roroTimes, got["roro"]), append(helmTimes, got["helm"])
		}
		return roroTimes, helmTimes
	}
	var roroAll, helmAll, roroOne, helmOne []time.Duration
	b.ResetTimer()
	for range b.N {
		r, h := samples(false)
		roroAll, helmAll = append(roroAll, r...), append(helmAll, h...)
		if pinned {
			r, h = samples(true)
			roroOne, helmOne = append(roroOne, r...), append(helmOne, h...)
		}
	}
	b.StopTimer()
	benchkit.Report(b, "roro-ms", benchkit.Ms(roroAll))
	benchkit.Report(b, "helm-ms", benchkit.Ms(helmAll))
	benchkit.Report(b, "roro/helm", benchkit.Ratios(roroAll, helmAll))
	if pinned {
		benchkit.Report(b, "1core-roro-ms", benchkit.Ms(roroOne))
		benchkit.Report(b, "1core-helm-ms", benchkit.Ms(helmOne))
		benchkit.Report(b, "1core-roro/helm", benchkit.Ratios(roroOne, helmOne))
	}
	b.ReportMetric(float64(len(roroAll)), "pairs")
	b.ReportMetric(float64(apps*len(benchManifests)), "manifests")
}
