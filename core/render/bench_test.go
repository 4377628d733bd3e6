package render_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/core/render/worker"
	"github.com/rorokube/roro/core/workspace"
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

// BenchmarkWorkspace500 loads, validates and renders a generated workspace of 500 apps with
// 10 manifests each on the go engine (target: under 1 s), as Roro does: templates run in
// bounded worker processes, a fresh pool each time as a CLI command starts one. In the
// same run, order alternated, it renders with the templates in-process, and reports the
// worker processes' cost as a ratio with its spread. With RORO_HELM set to a helm binary
// (ci/bench builds one), it also runs `helm template` on the equivalent chart.
func BenchmarkWorkspace500(b *testing.B) {
	const apps = 500
	dir := b.TempDir()
	writeBenchWorkspace(b, filepath.Join(dir, "ws"), apps)
	helm := os.Getenv("RORO_HELM")
	if helm != "" {
		writeBenchChart(b, filepath.Join(dir, "chart"), apps)
	}
	var roroTime, helmTime time.Duration
	var pooled, inproc []time.Duration
	manifests := 0
	withPool := func() {
		pool := worker.New(worker.Options{})
		defer pool.Close()
		start := time.Now()
		manifests = renderWorkspace(b, filepath.Join(dir, "ws"), pool)
		d := time.Since(start)
		roroTime += d
		pooled = append(pooled, d)
	}
	inProcess := func() {
		b.StopTimer()
		defer b.StartTimer()
		start := time.Now()
		if n := renderWorkspace(b, filepath.Join(dir, "ws"), render.InProcess{}); n != manifests {
			b.Fatalf("in-process render made %d objects, the workers %d", n, manifests)
		}
		inproc = append(inproc, time.Since(start))
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			withPool()
			inProcess()
		} else {
			inProcess()
			withPool()
		}
		if helm != "" {
			b.StopTimer()
			start := time.Now()
			out, err := exec.Command(helm, "template", "bench", filepath.Join(dir, "chart")).CombinedOutput()
			if err != nil {
				b.Fatalf("helm template: %v\n%.2000s", err, out)
			}
			helmTime += time.Since(start)
			if n := strings.Count(string(out), "\nkind: "); n != manifests {
				b.Fatalf("helm rendered %d objects, roro %d", n, manifests)
			}
			b.StartTimer()
		}
	}
	if manifests != apps*len(benchManifests) {
		b.Fatalf("rendered %d objects, want %d", manifests, apps*len(benchManifests))
	}
	perRoro := float64(roroTime.Microseconds()) / float64(b.N) / float64(manifests)
	b.ReportMetric(float64(roroTime.Milliseconds())/float64(b.N), "roro-ms/workspace")
	b.ReportMetric(perRoro, "roro-µs/manifest")
	ratios := make([]float64, len(pooled))
	for i := range pooled {
		ratios[i] = float64(pooled[i]) / float64(inproc[i])
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[0], "workers/inproc-min")
	b.ReportMetric(ratios[len(ratios)/2], "workers/inproc-median")
	b.ReportMetric(ratios[len(ratios)-1], "workers/inproc-max")
	if helm != "" {
		perHelm := float64(helmTime.Microseconds()) / float64(b.N) / float64(manifests)
		b.ReportMetric(float64(helmTime.Milliseconds())/float64(b.N), "helm-ms/chart")
		b.ReportMetric(perHelm, "helm-µs/manifest")
		b.ReportMetric(perHelm/perRoro, "helm/roro")
	} else {
		b.Log("RORO_HELM is not set: helm template not compared (ci/bench builds helm and sets it)")
	}
}
