package runtime

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testfs"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogs streams a pod's log (served by kwok from a file, as a kubelet serves a
// container's) with its [pod/container] prefix, then follows it as lines are added.
func TestLogs(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, 45*time.Second)
	ns := "roro-logs-test"
	dir := testfs.Layout(t, map[string]string{
		"roro.json":          `{"name": "logs", "members": ["apps/*"]}`,
		"apps/talk/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"]}`,
		"apps/talk/m.yaml":   "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: talk\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: talk}\n  template:\n    metadata:\n      labels: {app: talk}\n    spec:\n      containers:\n      - {name: speaker, image: example.invalid/talk:1}\n",
	})
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	rt := &Runtime{WS: ws, Connect: func(ctx context.Context, _ string) (*kube.Cluster, error) {
		return kube.Connect(ctx, kube.ConnectOptions{Kubeconfig: tc.Kubeconfig})
	}}
	t.Cleanup(func() { _, _ = rt.Down(context.Background(), DownOptions{}) })
	if err := rt.Up(ctx, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	pods, err := tc.WaitPods(ctx, ns, "app=talk", 1)
	if err != nil {
		t.Fatal(err)
	}
	pod := pods[0].Name
	logFile := filepath.Join(t.TempDir(), "speaker.log")
	// The CRI log format a kubelet reads: time, stream, tag, line.
	cri := func(line string) string {
		return time.Now().UTC().Format(time.RFC3339Nano) + " stdout F " + line + "\n"
	}
	if err := os.WriteFile(logFile, []byte(cri("hello")+cri("world")), 0o644); err != nil {
		t.Fatal(err)
	}
	follow := true
	logs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
		"metadata": map[string]any{"name": pod, "namespace": ns},
		"spec": map[string]any{"logs": []any{map[string]any{
			"containers": []any{"speaker"}, "logsFile": logFile, "follow": follow,
		}}},
	}}
	if err := tc.Apply(ctx, ns, logs); err != nil {
		t.Fatal(err)
	}

	var out syncBuffer
	err = testcluster.Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		var once bytes.Buffer
		if err := rt.Logs(ctx, "talk", LogOptions{}, &once); err != nil {
			return false, nil // kwok may not have the Logs object yet
		}
		out.Write(once.Bytes())
		return strings.Contains(once.String(), "world"), nil
	})
	if err != nil {
		t.Fatalf("logs never showed the file's lines: %v\n%s", err, out.String())
	}
	if want := "[" + pod + "/speaker] hello\n[" + pod + "/speaker] world\n"; !strings.Contains(out.String(), want) {
		t.Errorf("logs:\n%s\nwant\n%s", out.String(), want)
	}

	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var followed syncBuffer
	done := make(chan error, 1)
	go func() { done <- rt.Logs(fctx, "talk", LogOptions{Follow: true}, &followed) }()
	f, err := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(cri("again"))
	f.Close()
	err = testcluster.Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		return strings.Contains(followed.String(), "["+pod+"/speaker] again"), nil
	})
	if err != nil {
		t.Errorf("follow did not show the appended line: %v\n%s", err, followed.String())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("logs -f did not stop when its context ended")
	}
}
