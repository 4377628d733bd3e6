package testcluster

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// CRILine is line as a kubelet's log file holds it (time, stream, tag, line), stamped at.
func CRILine(at time.Time, line string) string {
	return at.UTC().Format(time.RFC3339Nano) + " stdout F " + line + "\n"
}

// ServeLog makes kwok serve text (CRI log lines, see CRILine) as the log of container in
// pod: it writes the text to a file of the test's and applies a kwok Logs object for the pod,
// following the file when follow (more lines appended to it are served). It returns the file.
func (c *Cluster) ServeLog(ctx context.Context, t testing.TB, ns, pod, container, text string, follow bool) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), pod+"-"+container+".log")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
		"metadata": map[string]any{"name": pod, "namespace": ns},
		"spec": map[string]any{"logs": []any{map[string]any{
			"containers": []any{container}, "logsFile": file, "follow": follow,
		}}},
	}}
	if err := c.Apply(ctx, ns, logs); err != nil {
		t.Fatal(err)
	}
	return file
}
