package runtime

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

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

// line appends a log line as `roro logs` prints it.
func (b *syncBuffer) line(l kube.LogLine) {
	_, _ = b.Write([]byte("[" + l.Pod + "/" + l.Container + "] " + l.Line + "\n"))
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
	ns := testcluster.UniqueName("roro-logs-test")
	dir := testfs.Layout(t, map[string]string{
		"roro.json":          `{"name": "logs", "members": ["apps/*"]}`,
		"apps/talk/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"]}`,
		"apps/talk/m.yaml":   "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: talk\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: talk}\n  template:\n    metadata:\n      labels: {app: talk}\n    spec:\n      containers:\n      - {name: speaker, image: example.invalid/talk:1}\n",
	})
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	rt := kubeEngine(t, tc, ws)
	t.Cleanup(func() { _, _ = runDown(context.Background(), rt, DownRequest{}) })
	if err := runUp(ctx, rt, UpRequest{}); err != nil {
		t.Fatal(err)
	}
	pods, err := tc.WaitPods(ctx, ns, "app=talk", 1)
	if err != nil {
		t.Fatal(err)
	}
	pod := pods[0].Name
	cri := func(line string) string { return testcluster.CRILine(time.Now(), line) }
	logFile := tc.ServeLog(ctx, t, ns, pod, "speaker", cri("hello")+cri("world"), true)

	var out syncBuffer
	err = testcluster.Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		var once syncBuffer
		if err := rt.Logs(ctx, "talk", Selection{}, kube.LogOptions{}, once.line); err != nil {
			return false, nil // kwok may not have the Logs object yet
		}
		out.Write([]byte(once.String()))
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
	go func() { done <- rt.Logs(fctx, "talk", Selection{}, kube.LogOptions{Follow: true}, followed.line) }()
	if err := rt.FollowLogs("talk", Selection{}); err != nil {
		t.Fatal(err)
	}
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
	// The engine's own buffer follows too, with the kubelet's timestamps.
	err = testcluster.Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		buf := rt.LogLines("talk", "")
		return len(buf.Lines) == 3 && buf.Following && buf.Lines[2].Line == "again" && buf.Lines[2].Pod == pod, nil
	})
	if err != nil {
		t.Errorf("the engine's log buffer: %+v", rt.LogLines("talk", ""))
	}
	for _, l := range rt.LogLines("talk", "").Lines {
		if l.Time.IsZero() || time.Since(l.Time) > time.Minute {
			t.Errorf("line %q has no time, or a wrong one: %v", l.Line, l.Time)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("logs -f did not stop when its context ended")
	}
}
