package runtime

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/internal/testcluster"
)

// copyTree copies the folder src to a new temporary folder.
func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// recorder keeps the events of a run.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) add(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) steps(step Step) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Step == step {
			out = append(out, e.App+"/"+e.Instance+" "+e.Message)
		}
	}
	return out
}

// demoEngine returns an engine over a copy of the demo workspace, on the test cluster, with
// the sample CRD and its objects installed, and its local state store.
func demoEngine(t *testing.T) (*Engine, *testcluster.Cluster, string, *Store) {
	t.Helper()
	tc := testcluster.Get(t)
	tc.InstallDevEnvironments(t)
	dir := copyTree(t, "../../fixtures/demo")
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	store := NewStore(t.TempDir(), dir)
	return kubeEngine(t, tc, ws, func(o *Options) { o.Store = store }), tc, dir, store
}

func nsGone(t *testing.T, tc *testcluster.Cluster, ns string) bool {
	n, err := tc.Kube.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	return apierrors.IsNotFound(err) || (err == nil && n.DeletionTimestamp != nil)
}

// TestDemoLifecycle runs the demo workspace through up (dependency order, env from the
// DevEnvironment custom resource, env injection), ps, a template change and a prune, a second
// instance beside the default one, and down, which leaves nothing roro created and keeps a
// namespace and an object roro did not create.
func TestDemoLifecycle(t *testing.T) {
	rt, tc, dir, store := demoEngine(t)
	ctx := testcluster.Context(t, 4*time.Minute)
	t.Cleanup(func() {
		_, _ = runDown(context.Background(), rt, DownRequest{DownOptions: DownOptions{Volumes: true}})
		_, _ = runDown(context.Background(), rt, DownRequest{Selection: Selection{Apps: []string{"api"}, Instance: "pr-42"}})
	})
	// A namespace and an object roro did not create, where the web app will run.
	foreign := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo-web"}}
	if _, err := tc.Kube.CoreV1().Namespaces().Create(ctx, foreign, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tc.Kube.CoreV1().Namespaces().Delete(context.Background(), "demo-web", metav1.DeleteOptions{})
	})
	mine := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "not-roros", Namespace: "demo-web"}}
	if _, err := tc.Kube.CoreV1().ConfigMaps("demo-web").Create(ctx, mine, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	var rec recorder
	if err := runUp(ctx, rt, UpRequest{Progress: rec.add}); err != nil {
		t.Fatalf("up: %v\n%v", err, rec.events)
	}
	ready := rec.steps("ready")
	if len(ready) != 3 || !strings.HasPrefix(ready[0], "db/") || !strings.HasPrefix(ready[1], "api/") || !strings.HasPrefix(ready[2], "web/") {
		t.Errorf("ready order %v, want db, api, web", ready)
	}
	for _, ns := range []string{"demo-db", "demo-api", "demo-web"} {
		pods, err := tc.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("pods in %s: %v (%d)", ns, err, len(pods.Items))
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning {
				t.Errorf("pod %s/%s is %s", ns, p.Name, p.Status.Phase)
			}
		}
	}
	// Env from the DevEnvironment "dev": into the template, and injected into containers.
	dep, err := tc.Kube.AppsV1().Deployments("demo-api").Get(ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if got := envValue(c, "DATABASE_HOST"); got != "db.demo-db.svc.cluster.local" {
		t.Errorf("api's DATABASE_HOST is %q, not the database host of DevEnvironment dev; env %v", got, c.Env)
	}
	var tokenRef *corev1.SecretKeySelector
	for _, e := range c.Env {
		if e.Name == "API_TOKEN" && e.ValueFrom != nil {
			tokenRef = e.ValueFrom.SecretKeyRef
		}
		if e.Name == "API_TOKEN" && e.Value != "" {
			t.Errorf("the secret API_TOKEN is inlined in the Deployment")
		}
	}
	if tokenRef == nil {
		t.Fatalf("API_TOKEN not injected from a Secret: %+v", c.Env)
	}
	sec, err := tc.Kube.CoreV1().Secrets("demo-api").Get(ctx, tokenRef.Name, metav1.GetOptions{})
	if err != nil || string(sec.Data["API_TOKEN"]) != "dev-token-0f3c9a" {
		t.Errorf("env Secret %s: %v %q", tokenRef.Name, err, sec.Data["API_TOKEN"])
	}

	ps, err := rt.Ps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 {
		t.Fatalf("ps: %+v", ps)
	}
	for _, s := range ps {
		if s.Health != Healthy || s.Environment != "dev" || s.Ready != s.Objects {
			t.Errorf("ps %s: %+v", s.App, s)
		}
	}

	// Drop the ConfigMap from api's templates: the next up prunes it.
	svc := filepath.Join(dir, "apps", "api", "manifests", "service.yaml")
	data, _ := os.ReadFile(svc)
	cut := strings.Index(string(data), "---\napiVersion: v1\nkind: ConfigMap")
	if cut < 0 {
		t.Fatal("fixture changed: no ConfigMap in api/manifests/service.yaml")
	}
	if err := os.WriteFile(svc, data[:cut], 0o644); err != nil {
		t.Fatal(err)
	}
	ws2, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Reload(ws2); err != nil {
		t.Fatal(err)
	}
	rec = recorder{}
	if err := runUp(ctx, rt, UpRequest{Selection: Selection{Apps: []string{"api"}}, Progress: rec.add}); err != nil {
		t.Fatalf("second up: %v", err)
	}
	if pruned := rec.steps("prune"); len(pruned) != 1 || !strings.Contains(pruned[0], "ConfigMap demo-api/api-settings") {
		t.Errorf("pruned %v, want the ConfigMap", pruned)
	}
	if _, err := tc.Kube.CoreV1().ConfigMaps("demo-api").Get(ctx, "api-settings", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("api-settings still exists: %v", err)
	}
	if _, err := tc.Kube.AppsV1().Deployments("demo-api").Get(ctx, "api", metav1.GetOptions{}); err != nil {
		t.Errorf("the Deployment went with the prune: %v", err)
	}

	// A second instance, in staging, beside the default one.
	pr := Selection{Apps: []string{"api"}, Instance: "pr-42"}
	if err := runUp(ctx, rt, UpRequest{Selection: pr}); err != nil {
		t.Fatalf("up pr-42: %v", err)
	}
	prDep, err := tc.Kube.AppsV1().Deployments("api-pr-42").Get(ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := envValue(prDep.Spec.Template.Spec.Containers[0], "DATABASE_HOST"); got != "db.staging.internal" {
		t.Errorf("pr-42 (staging): DATABASE_HOST is %q, not DevEnvironment staging's host", got)
	}
	ps, _ = rt.Ps(ctx)
	var instances []string
	for _, s := range ps {
		if s.App == "api" {
			instances = append(instances, s.Instance+"@"+s.Environment)
		}
	}
	if strings.Join(instances, ",") != "default@dev,pr-42@staging" {
		t.Errorf("api instances %v", instances)
	}
	if _, err := runDown(ctx, rt, DownRequest{Selection: pr}); err != nil {
		t.Fatal(err)
	}
	if !nsGone(t, tc, "api-pr-42") {
		t.Error("namespace api-pr-42 survived down of its instance")
	}
	if _, err := tc.Kube.AppsV1().Deployments("demo-api").Get(ctx, "api", metav1.GetOptions{}); err != nil {
		t.Errorf("down of pr-42 took the default instance: %v", err)
	}

	results, err := runDown(ctx, rt, DownRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if !r.Running || r.Deleted == 0 {
			t.Errorf("down %s: %+v", r.App, r)
		}
	}
	for _, ns := range []string{"demo-db", "demo-api"} {
		if !nsGone(t, tc, ns) {
			t.Errorf("namespace %s, created by roro, survived down", ns)
		}
	}
	if nsGone(t, tc, "demo-web") {
		t.Error("down deleted namespace demo-web, which roro did not create")
	}
	if _, err := tc.Kube.CoreV1().ConfigMaps("demo-web").Get(ctx, "not-roros", metav1.GetOptions{}); err != nil {
		t.Errorf("down deleted an object roro did not create: %v", err)
	}
	if _, err := tc.Kube.AppsV1().Deployments("demo-web").Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("web's Deployment survived down: %v", err)
	}
	again, err := runDown(ctx, rt, DownRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range again {
		if r.Running {
			t.Errorf("second down found %s running", r.App)
		}
	}
	if st := store.Load(); len(st.Deployed) != 0 {
		t.Errorf("local state after down: %+v", st.Deployed)
	}
}

// envValue is the value a container's spec gives the variable name ("" when unset or not a
// plain value).
func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}
