package sandbox

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rorokube/roro/core/kube"
	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/forward"
	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testfs"
)

// TestSandboxPodsAnswer: with sandbox-pods running, an app's pod answers an HTTP request
// through roro's forward as the demo's echo image does (the request, the pod's name, and the
// env it asked to show), as the newcomer sees it in the browser.
func TestSandboxPodsAnswer(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-sandbox-pods")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, tc.Config.Host, ns, tc.Kube, tc.Dynamic) }()
	defer func() { cancel(); <-done }()
	dir := testfs.Layout(t, map[string]string{
		"roro.json":         `{"name": "sandbox", "members": ["apps/*"]}`,
		"apps/web/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"], "forwards": [{"target": "deployment/web", "ports": ["0:8080"]}]}`,
		"apps/web/m.yaml":   "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: example.invalid/web:1\n        ports: [{containerPort: 8080}]\n        env:\n        - {name: ECHO_INCLUDE_ENV_VARS, value: \"1\"}\n        - {name: API_URL, value: http://api.example}\n        - name: TOKEN\n          valueFrom: {secretKeyRef: {name: t, key: t, optional: true}}\n",
	})
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := runtime.New(ws, runtime.Options{Connect: runtime.KubeConnector(tc.Kubeconfig, "", kube.DefaultTimeout, time.Now, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	tctx := testcluster.Context(t, time.Minute)
	defer func() {
		if op, err := eng.Down(runtime.DownRequest{}); err == nil {
			_ = op.Wait(context.Background())
		}
	}()
	op, err := eng.Up(runtime.UpRequest{Forward: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Wait(tctx); err != nil {
		t.Fatal(err)
	}
	var local int
	var body string
	err = testcluster.Poll(tctx, 200*time.Millisecond, func() (bool, error) {
		s := eng.Snapshot()
		if len(s.Forwards) != 1 || s.Forwards[0].State != forward.Connected {
			return false, nil
		}
		local = s.Forwards[0].Ports[0].Local
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(local) + "/hello")
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("no answer through the forward: %v (%q)", err, body)
	}
	var answer struct {
		Path, Method string
		OS           struct{ Hostname string }
		Env          map[string]string
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil {
		t.Fatalf("answer %q is not the echo image's JSON: %v", body, err)
	}
	if !strings.HasPrefix(answer.OS.Hostname, "web-") || answer.Path != "/hello" || answer.Method != "GET" {
		t.Errorf("answer %q: want GET /hello from a web pod", body)
	}
	// The pod asks for its env in the answer (ECHO_INCLUDE_ENV_VARS), as the demo's web does;
	// a value from a Secret is not shown.
	if answer.Env["API_URL"] != "http://api.example" || answer.Env["ECHO_INCLUDE_ENV_VARS"] != "1" {
		t.Errorf("env in the answer: %v", answer.Env)
	}
	if _, ok := answer.Env["TOKEN"]; ok {
		t.Errorf("a value from a Secret is in the answer: %v", answer.Env)
	}
}
