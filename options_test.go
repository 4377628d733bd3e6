package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testfs"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// widgetCRD is a CRD of its own API group, so no other test run shares it: kind Widget,
// namespaced, whose spec.size must be an integer.
type widgetCRD struct{ group string }

func newWidgetCRD(t *testing.T, tc *testcluster.Cluster) widgetCRD {
	w := widgetCRD{group: "w" + rand.String(8) + ".roro.test"}
	t.Cleanup(func() { // whatever the test left behind
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = tc.Dynamic.Resource(crdResource).Delete(ctx, w.name(), metav1.DeleteOptions{})
	})
	return w
}

func (w widgetCRD) name() string { return "widgets." + w.group }

func (w widgetCRD) manifest() string {
	return `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.` + w.group + `
spec:
  group: ` + w.group + `
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
`
}

// widget is a Widget named name whose spec.size is size, as YAML.
func (w widgetCRD) widget(name, size string) string {
	return "apiVersion: " + w.group + "/v1\nkind: Widget\nmetadata:\n  name: " + name + "\nspec:\n  size: " + size + "\n"
}

func (w widgetCRD) resource() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: w.group, Version: "v1", Resource: "widgets"}
}

// crdState says whether the CRD exists and, if so, whether it is being deleted.
func (w widgetCRD) state(ctx context.Context, tc *testcluster.Cluster) (exists, deleting bool, err error) {
	crd, err := tc.Dynamic.Resource(crdResource).Get(ctx, w.name(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return true, crd.GetDeletionTimestamp() != nil, nil
}

// nsGoing reports whether the namespace is deleted or being deleted.
func nsGoing(ctx context.Context, tc *testcluster.Cluster, ns string) (bool, error) {
	n, err := tc.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return n.DeletionTimestamp != nil, nil
}

const configMapYAML = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  k: %s\n"

// TestUpCRDAndItsResource proves that a CRD and a custom resource of it, new to the
// cluster, come up in one `up` (the resource is dry-run once its CRD serves), and that a later
// up whose resource the server refuses applies nothing and leaves the CRD it did not create.
func TestUpCRDAndItsResource(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, 2*time.Minute)
	crd := newWidgetCRD(t, tc)
	ns := testcluster.UniqueName("roro-crd-up")
	dir := appWorkspace(t, ns, map[string]string{
		"crd.yaml":    crd.manifest(),
		"widget.yaml": crd.widget("w", "3"),
		"cm.yaml":     fmt.Sprintf(configMapYAML, "settings", "one"),
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down", "--crds")...) })
	code, _, errOut := runCLI(t, append(kc, "up")...)
	if code != exitOK {
		t.Fatalf("up of a CRD and its resource: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "create   CustomResourceDefinition "+crd.name()) {
		t.Errorf("up did not say it created the CRD:\n%s", errOut)
	}
	w, err := tc.Dynamic.Resource(crd.resource()).Namespace(ns).Get(ctx, "w", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the Widget is not in the cluster: %v", err)
	}
	if size, _, _ := unstructured.NestedInt64(w.Object, "spec", "size"); size != 3 || w.GetLabels()["roro.dev/app"] != "big" {
		t.Errorf("the Widget: size %d, labels %v", size, w.GetLabels())
	}

	// The CRD exists now; a Widget the server refuses fails the dry run, nothing changes, and
	// the CRD, which this up did not create, stays.
	testfs.Write(t, dir, map[string]string{
		"apps/big/manifests/widget.yaml": crd.widget("w", `"big"`),
		"apps/big/manifests/cm.yaml":     fmt.Sprintf(configMapYAML, "settings", "two"),
	})
	code, _, errOut = runCLI(t, append(kc, "up")...)
	if code != exitFail || !strings.Contains(errOut, "nothing was applied") || !strings.Contains(errOut, "Widget "+ns+"/w") || !strings.Contains(errOut, "spec.size") {
		t.Errorf("up of a refused Widget: exit %d, want the dry run's failure naming it:\n%s", code, errOut)
	}
	if exists, deleting, err := crd.state(ctx, tc); err != nil || !exists || deleting {
		t.Errorf("a failed up touched the CRD it had not created: exists %v, deleting %v, %v", exists, deleting, err)
	}
	if cm, err := tc.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{}); err != nil || cm.Data["k"] != "one" {
		t.Errorf("a failed up changed the ConfigMap: %v %v", err, cm.Data)
	}
}

// TestUpNewCRDRolledBack proves the README's rollback: when a custom resource whose CRD
// arrives with the same up fails its dry run (which can only run once the CRD serves), the
// failure names the resource, nothing else is applied, and the CRD and namespace this up
// created are removed again.
func TestUpNewCRDRolledBack(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, 2*time.Minute)
	crd := newWidgetCRD(t, tc)
	ns := testcluster.UniqueName("roro-crd-undo")
	dir := appWorkspace(t, ns, map[string]string{
		"crd.yaml":    crd.manifest(),
		"widget.yaml": crd.widget("w", `"not a number"`),
		"cm.yaml":     fmt.Sprintf(configMapYAML, "settings", "one"),
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down", "--crds")...) })
	code, _, errOut := runCLI(t, append(kc, "up")...)
	if code != exitFail {
		t.Fatalf("up of a refused Widget with its new CRD: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{
		"the dry run failed; nothing was applied, and the namespaces and CRDs this up created were removed again",
		"Widget " + ns + "/w", "spec.size",
		"create   CustomResourceDefinition " + crd.name(), "undo     CustomResourceDefinition " + crd.name(),
		"undo     Namespace " + ns,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if exists, deleting, err := crd.state(ctx, tc); err != nil || (exists && !deleting) {
		t.Errorf("the CRD this up created remains: exists %v, deleting %v, %v", exists, deleting, err)
	}
	if going, err := nsGoing(ctx, tc, ns); err != nil || !going {
		t.Errorf("the namespace this up created remains: %v", err)
	}
	cms, err := tc.Kube.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{LabelSelector: "roro.dev/app=big,applyset.kubernetes.io/part-of"})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		if cm.Namespace == ns {
			t.Errorf("ConfigMap %s/%s was applied", cm.Namespace, cm.Name)
		}
	}
}

// TestDownCRDs proves that plain down keeps the CRDs an app applied (saying so) while it
// deletes the rest, custom resources included, and that down --crds deletes them.
func TestDownCRDs(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, 3*time.Minute)
	crd := newWidgetCRD(t, tc)
	ns := testcluster.UniqueName("roro-crd-down")
	dir := appWorkspace(t, ns, map[string]string{
		"crd.yaml":    crd.manifest(),
		"widget.yaml": crd.widget("w", "1"),
		"cm.yaml":     fmt.Sprintf(configMapYAML, "settings", "one"),
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down", "--crds")...) })
	if code, _, errOut := runCLI(t, append(kc, "up")...); code != exitOK {
		t.Fatalf("up: exit %d\n%s", code, errOut)
	}
	code, _, errOut := runCLI(t, append(kc, "down")...)
	if code != exitOK {
		t.Fatalf("down: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"kept     CustomResourceDefinition " + crd.name(), "delete   Widget " + ns + "/w", "delete   ConfigMap " + ns + "/settings"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("down's output lacks %q:\n%s", want, errOut)
		}
	}
	if exists, deleting, err := crd.state(ctx, tc); err != nil || !exists || deleting {
		t.Errorf("plain down deleted the CRD: exists %v, deleting %v, %v", exists, deleting, err)
	}
	if _, err := tc.Dynamic.Resource(crd.resource()).Namespace(ns).Get(ctx, "w", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		// The Widget's namespace may still be going: the Widget must then be going too.
		if going, nerr := nsGoing(ctx, tc, ns); nerr != nil || !going {
			t.Errorf("down kept the Widget: %v", err)
		}
	}

	if code, _, errOut := runCLI(t, append(kc, "up")...); code != exitOK {
		t.Fatalf("second up: exit %d\n%s", code, errOut)
	}
	code, _, errOut = runCLI(t, append(kc, "down", "--crds")...)
	if code != exitOK || !strings.Contains(errOut, "delete   CustomResourceDefinition "+crd.name()) {
		t.Fatalf("down --crds: exit %d\n%s", code, errOut)
	}
	err := testcluster.Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		exists, _, err := crd.state(ctx, tc)
		return !exists, err
	})
	if err != nil {
		t.Errorf("down --crds: the CRD is still there: %v", err)
	}
}

// TestUpPruneKeepsVolumesAndCRDs proves that objects dropped from an app's manifests are
// pruned at the next up, except PersistentVolumeClaims and CRDs, which stay and are reported.
func TestUpPruneKeepsVolumesAndCRDs(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, 2*time.Minute)
	crd := newWidgetCRD(t, tc)
	ns := testcluster.UniqueName("roro-prune")
	pvc := "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests: {storage: 1Mi}\n"
	dir := appWorkspace(t, ns, map[string]string{
		"crd.yaml":  crd.manifest(),
		"pvc.yaml":  pvc,
		"keep.yaml": fmt.Sprintf(configMapYAML, "stays", "one"),
		"gone.yaml": fmt.Sprintf(configMapYAML, "dropped", "one"),
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down", "--volumes", "--crds")...) })
	// No storage provisioner here: the claim stays Pending, so do not wait for health.
	if code, _, errOut := runCLI(t, append(kc, "up", "--no-wait")...); code != exitOK {
		t.Fatalf("up: exit %d\n%s", code, errOut)
	}
	for _, f := range []string{"crd.yaml", "pvc.yaml", "gone.yaml"} {
		if err := os.Remove(filepath.Join(dir, "apps/big/manifests", f)); err != nil {
			t.Fatal(err)
		}
	}
	code, _, errOut := runCLI(t, append(kc, "up", "--no-wait")...)
	if code != exitOK {
		t.Fatalf("up without them: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{
		"prune    ConfigMap " + ns + "/dropped",
		"kept     PersistentVolumeClaim " + ns + "/data is no longer rendered",
		"kept     CustomResourceDefinition " + crd.name() + " is no longer rendered",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("up's output lacks %q:\n%s", want, errOut)
		}
	}
	if _, err := tc.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "dropped", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the dropped ConfigMap was not pruned: %v", err)
	}
	if _, err := tc.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "stays", metav1.GetOptions{}); err != nil {
		t.Errorf("the ConfigMap still rendered went: %v", err)
	}
	if c, err := tc.Kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{}); err != nil || c.DeletionTimestamp != nil {
		t.Errorf("prune deleted the claim: %v", err)
	}
	if exists, deleting, err := crd.state(ctx, tc); err != nil || !exists || deleting {
		t.Errorf("prune deleted the CRD: exists %v, deleting %v, %v", exists, deleting, err)
	}
}

// TestUpTimeout proves that up --timeout bounds the wait for health: on a Deployment that is
// never scheduled, up fails after about that long, naming what was not ready.
func TestUpTimeout(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-timeout")
	dir := appWorkspace(t, ns, map[string]string{
		"web.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      nodeSelector: {nowhere: 'true'}\n      containers:\n      - {name: web, image: example.invalid/web:1}\n",
		"cm.yaml":  fmt.Sprintf(configMapYAML, "settings", "one"),
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })
	start := time.Now()
	code, _, errOut := runCLI(t, append(kc, "up", "--timeout", "2s")...)
	took := time.Since(start)
	if code != exitFail {
		t.Fatalf("up of a Deployment never scheduled: exit %d\n%s", code, errOut)
	}
	if took < 2*time.Second || took > 45*time.Second {
		t.Errorf("up --timeout 2s ended after %s", took)
	}
	_, waiting, _ := strings.Cut(errOut, "not healthy within 2s; waiting on:")
	if !regexp.MustCompile(`^\n\s+Deployment `+ns+`/web`).MatchString(waiting) || strings.Contains(waiting, "ConfigMap") {
		t.Errorf("the timeout does not name what was not ready, and only that:\n%s", errOut)
	}
}

// TestLogsTailAndSince proves logs --tail N prints the last N lines of each container and
// --since D the lines newer than D, from a pod whose log kwok serves (its Logs object).
func TestLogsTailAndSince(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, time.Minute)
	ns := testcluster.UniqueName("roro-logs-opts")
	dir := appWorkspace(t, ns, map[string]string{
		"d.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: talker\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: talker}\n  template:\n    metadata:\n      labels: {app: talker}\n    spec:\n      containers:\n      - {name: c, image: example.invalid/talker:1}\n",
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })
	if code, _, errOut := runCLI(t, append(kc, "up")...); code != exitOK {
		t.Fatalf("up: %s", errOut)
	}
	pods, err := tc.WaitPods(ctx, ns, "app=talker", 1)
	if err != nil {
		t.Fatal(err)
	}
	// Two lines from two hours ago, three from the last minute.
	now := time.Now().UTC()
	var log strings.Builder
	for i, age := range []time.Duration{2 * time.Hour, 2*time.Hour - time.Second, time.Minute, 50 * time.Second, 40 * time.Second} {
		log.WriteString(testcluster.CRILine(now.Add(-age), fmt.Sprintf("line %d", i+1)))
	}
	tc.ServeLog(ctx, t, ns, pods[0].Name, "c", log.String(), false)
	prefix := "[" + pods[0].Name + "/c] "
	lines := func(n ...int) string {
		var b strings.Builder
		for _, i := range n {
			fmt.Fprintf(&b, "%sline %d\n", prefix, i)
		}
		return b.String()
	}
	var out string
	err = testcluster.Poll(ctx, 200*time.Millisecond, func() (bool, error) { // kwok may not have the Logs object yet
		_, out, _ = runCLI(t, append(kc, "logs", "big")...)
		return out == lines(1, 2, 3, 4, 5), nil
	})
	if err != nil {
		t.Fatalf("logs: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--tail", "2"}, lines(4, 5)},
		{[]string{"--tail", "4"}, lines(2, 3, 4, 5)},
		{[]string{"--since", "10m"}, lines(3, 4, 5)},
		{[]string{"--since", "3h"}, lines(1, 2, 3, 4, 5)},
		{[]string{"--since", "10m", "--tail", "1"}, lines(5)},
	} {
		code, out, errOut := runCLI(t, append(append(kc, "logs", "big"), tt.args...)...)
		if code != exitOK || out != tt.want {
			t.Errorf("logs %v: exit %d\n%s%s\nwant:\n%s", tt.args, code, out, errOut, tt.want)
		}
	}
}

// TestUpForceConflicts proves that a field another field manager took over stops up with the
// conflict (naming the manager, the field and --force-conflicts) and changes nothing, and
// that up --force-conflicts takes the field back for roro.
func TestUpForceConflicts(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, time.Minute)
	ns := testcluster.UniqueName("roro-conflict")
	dir := appWorkspace(t, ns, map[string]string{"cm.yaml": fmt.Sprintf(configMapYAML, "settings", "from-roro")})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })
	if code, _, errOut := runCLI(t, append(kc, "up")...); code != exitOK {
		t.Fatalf("up: %s", errOut)
	}
	// Another manager takes data.k over with its own server-side apply.
	theirs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "settings", "namespace": ns},
		"data":     map[string]any{"k": "from-intruder"},
	}}
	if _, err := tc.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	cms := tc.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace(ns)
	if _, err := cms.Apply(ctx, "settings", theirs, metav1.ApplyOptions{FieldManager: "intruder", Force: true}); err != nil {
		t.Fatal(err)
	}
	value := func() string {
		cm, err := tc.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cm.Data["k"]
	}

	code, _, errOut := runCLI(t, append(kc, "up")...)
	if code != exitFail {
		t.Fatalf("up over another manager's field: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"ConfigMap " + ns + "/settings", "conflict", `"intruder"`, ".data.k", "--force-conflicts"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("the conflict lacks %q:\n%s", want, errOut)
		}
	}
	if v := value(); v != "from-intruder" {
		t.Errorf("a refused up changed the field: %q", v)
	}

	code, _, errOut = runCLI(t, append(kc, "up", "--force-conflicts")...)
	if code != exitOK {
		t.Fatalf("up --force-conflicts: exit %d\n%s", code, errOut)
	}
	if v := value(); v != "from-roro" {
		t.Errorf("up --force-conflicts left %q", v)
	}
	cm, err := tc.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range cm.ManagedFields {
		if mf.Manager == "intruder" && mf.FieldsV1 != nil && strings.Contains(string(mf.FieldsV1.Raw), `"f:k"`) {
			t.Errorf("intruder still owns data.k: %s", mf.FieldsV1.Raw)
		}
	}
	// roro owns it now: a plain up goes through again.
	if code, _, errOut := runCLI(t, append(kc, "up")...); code != exitOK {
		t.Errorf("up after taking the field over: exit %d\n%s", code, errOut)
	}
}
