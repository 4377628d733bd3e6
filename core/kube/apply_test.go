package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rorokube/roro/internal/testcluster"
)

// TestApplyConflictIsReportedNotForced: a field another manager owns stops roro's apply with
// a message that says how to take it over; with ForceConflicts roro takes it.
func TestApplyConflictIsReportedNotForced(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, time.Minute)
	ns := tc.Namespace(t, "conflict")
	c, err := Connect(ctx, ConnectOptions{Kubeconfig: tc.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	cm := func(value string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "shared", "namespace": ns},
			"data":     map[string]any{"owner": value},
		}}
	}
	other := cm("someone-else")
	ri, _, err := c.Resource(context.Background(), other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ri.Apply(ctx, "shared", other, metav1.ApplyOptions{FieldManager: "someone-else"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Apply(ctx, cm("roro"), ApplyOptions{})
	if err == nil {
		t.Fatal("roro took over a field another manager owns without --force-conflicts")
	}
	for _, want := range []string{"ConfigMap " + ns + "/shared", "conflict", "someone-else", ".data.owner", "--force-conflicts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	live, err := c.Apply(ctx, cm("roro"), ApplyOptions{ForceConflicts: true})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructured.NestedString(live.Object, "data", "owner"); v != "roro" {
		t.Errorf("forced apply left owner=%q", v)
	}
}
