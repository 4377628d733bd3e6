package main

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testfs"
)

// userProxy is an HTTPS reverse proxy to the test cluster's API server that tells the
// kubeconfig users apart: it records the bearer token of every request (each user of the
// kubeconfig it writes has its own), then drops it and talks to the API server with the test
// cluster's admin credentials. So several contexts reach the same cluster, and every request
// says which context sent it.
type userProxy struct {
	srv *httptest.Server
	mu  sync.Mutex
	log []proxied
}

// proxied is one request as the proxy saw it.
type proxied struct{ token, method, path string }

func newUserProxy(t *testing.T, tc *testcluster.Cluster) *userProxy {
	t.Helper()
	p := &userProxy{}
	rp := tc.ReverseProxy(t) // drops the user's token, talks as the admin
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		p.mu.Lock()
		p.log = append(p.log, proxied{token: token, method: r.Method, path: r.URL.Path})
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

// writes returns the paths of the requests that change something (POST, PUT, PATCH,
// DELETE) sent with token since the last reset.
func (p *userProxy) writes(token string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, r := range p.log {
		if r.token == token && r.method != http.MethodGet && r.method != http.MethodHead && r.method != http.MethodOptions {
			out = append(out, r.method+" "+r.path)
		}
	}
	return out
}

// reads returns the paths of the GET requests sent with token since the last reset.
func (p *userProxy) reads(token string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, r := range p.log {
		if r.token == token && r.method == http.MethodGet {
			out = append(out, r.path)
		}
	}
	return out
}

func (p *userProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = nil
}

// kubeconfig writes a kubeconfig whose contexts (name → token) all reach the cluster through
// the proxy, each as its own user, with current the current context.
func (p *userProxy) kubeconfig(t *testing.T, current string, contexts map[string]string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	cfg.Clusters["proxied"] = &clientcmdapi.Cluster{Server: p.srv.URL, CertificateAuthorityData: ca}
	for name, token := range contexts {
		cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
		cfg.Contexts[name] = &clientcmdapi.Context{Cluster: "proxied", AuthInfo: name}
	}
	cfg.CurrentContext = current
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// psJSON runs `roro ps -o json` and returns its rows.
func psJSON(t *testing.T, args ...string) []psRow {
	t.Helper()
	code, out, errOut := runCLI(t, append(args, "ps", "-o", "json")...)
	if code != exitOK {
		t.Fatalf("ps: exit %d\n%s%s", code, out, errOut)
	}
	var rows []psRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("ps -o json is not JSON: %v\n%s", err, out)
	}
	return rows
}

// rowsOf keeps the rows of app, as "environment@context".
func rowsOf(rows []psRow, app string) []string {
	var out []string
	for _, r := range rows {
		if r.App == app {
			out = append(out, r.Environment+"@"+r.Context)
		}
	}
	slices.Sort(out)
	return out
}

// TestContextOfTheEnvironment proves where up, ps and down go, with a kubeconfig of three
// contexts that reach the same cluster as three users a proxy tells apart (current-context
// "other"): an environment's "context" in roro.json is where up writes (not the current
// context, nor another environment's), an environment without one uses the current context,
// ps reads each environment through its context and reports it, and --context sends
// everything to the context it names, whatever the environment says.
func TestContextOfTheEnvironment(t *testing.T) {
	tc := testcluster.Get(t)
	proxy := newUserProxy(t, tc)
	tokens := map[string]string{"alpha": "alpha-token", "beta": "beta-token", "other": "other-token"}
	kubeconfig := proxy.kubeconfig(t, "other", tokens)
	ns := testcluster.UniqueName("roro-ctx")
	dir := testfs.Layout(t, map[string]string{
		"roro.json": `{"name": "contexts", "members": ["apps/*"], "defaultEnvironment": "dev",
  "environments": {"dev": {"context": "alpha"}, "staging": {"context": "beta"}, "plain": {}}}`,
		"apps/ctx/app.json": fmt.Sprintf(`{"namespace": %q, "manifests": ["m.yaml"]}`, ns),
		"apps/ctx/m.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ctx\ndata:\n  env: {{ .Environment.Name }}\n  context: {{ .Environment.Context | quote }}\n",
	})
	kc := []string{"--kubeconfig", kubeconfig, "--workspace", dir}
	t.Cleanup(func() {
		runCLI(t, append(kc, "--context", "other", "down")...)
		_ = tc.Kube.CoreV1().Namespaces().Delete(testcluster.Context(t, 10*time.Second), ns, metav1.DeleteOptions{})
	})
	ctx := testcluster.Context(t, 2*time.Minute)
	cmPath := "/api/v1/namespaces/" + ns + "/configmaps/ctx"
	// wrote checks that up applied the ConfigMap as the user of context want and as no other,
	// and that the cluster has the environment's render of it.
	wrote := func(step, want, env string) {
		t.Helper()
		for name, token := range tokens {
			applied := slices.Contains(proxy.writes(token), http.MethodPatch+" "+cmPath)
			if applied != (name == want) {
				t.Errorf("%s: context %s applied the ConfigMap: %v, want only %s (writes as %s: %v)", step, name, applied, want, name, proxy.writes(token))
			}
		}
		cm, err := tc.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "ctx", metav1.GetOptions{})
		if err != nil || cm.Data["env"] != env {
			t.Errorf("%s: the cluster's ConfigMap: %v %v, want env %s", step, err, cm.Data, env)
		}
	}

	// The default environment, dev, names alpha: up goes there, not to the current context.
	if code, _, errOut := runCLI(t, append(kc, "up")...); code != exitOK {
		t.Fatalf("up: exit %d\n%s", code, errOut)
	}
	wrote("up (dev)", "alpha", "dev")
	if cm, err := tc.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "ctx", metav1.GetOptions{}); err != nil || cm.Data["context"] != "alpha" {
		t.Errorf("the template's .Environment.Context: %v %v, want alpha", err, cm.Data)
	}
	proxy.reset()
	rows := psJSON(t, kc...)
	// Three contexts reach this cluster: the instance is listed once, through the context of
	// its own environment.
	if got := rowsOf(rows, "ctx"); !slices.Equal(got, []string{"dev@alpha"}) {
		t.Errorf("ps after up in dev: rows %v, want the instance once, in dev through context alpha", got)
	}
	// ps asks every environment through its own context (the instance lists are reads).
	for name, token := range tokens {
		if !slices.Contains(proxy.reads(token), "/api/v1/secrets") {
			t.Errorf("ps did not list the inventories through context %s: %v", name, proxy.reads(token))
		}
	}

	// staging names beta.
	proxy.reset()
	if code, _, errOut := runCLI(t, append(kc, "up", "-e", "staging")...); code != exitOK {
		t.Fatalf("up -e staging: exit %d\n%s", code, errOut)
	}
	wrote("up -e staging", "beta", "staging")
	if got := rowsOf(psJSON(t, kc...), "ctx"); !slices.Equal(got, []string{"staging@beta"}) {
		t.Errorf("ps after up in staging: rows %v, want the instance once, in staging through context beta", got)
	}

	// plain names no context: the kubeconfig's current one.
	proxy.reset()
	if code, _, errOut := runCLI(t, append(kc, "up", "-e", "plain")...); code != exitOK {
		t.Fatalf("up -e plain: exit %d\n%s", code, errOut)
	}
	wrote("up -e plain", "other", "plain")

	// --context beats the environment's context, for up and for ps.
	proxy.reset()
	if code, _, errOut := runCLI(t, append(kc, "--context", "beta", "up")...); code != exitOK {
		t.Fatalf("--context beta up: exit %d\n%s", code, errOut)
	}
	wrote("--context beta up (dev)", "beta", "dev")
	proxy.reset()
	rows = psJSON(t, append(kc, "--context", "beta")...)
	if got := rowsOf(rows, "ctx"); !slices.Equal(got, []string{"dev@beta"}) {
		t.Errorf("--context beta ps: rows %v, want the instance once, in context beta", got)
	}
	for _, name := range []string{"alpha", "other"} {
		if len(proxy.reads(tokens[name])) > 0 {
			t.Errorf("--context beta ps still asked context %s: %v", name, proxy.reads(tokens[name]))
		}
	}

	// down goes through the environment's context too.
	proxy.reset()
	if code, _, errOut := runCLI(t, append(kc, "down")...); code != exitOK {
		t.Fatalf("down: exit %d\n%s", code, errOut)
	}
	if !slices.Contains(proxy.writes(tokens["alpha"]), http.MethodDelete+" "+cmPath) || len(proxy.writes(tokens["beta"])) > 0 || len(proxy.writes(tokens["other"])) > 0 {
		t.Errorf("down (dev): deletes as alpha %v, writes as beta %v, as other %v", proxy.writes(tokens["alpha"]), proxy.writes(tokens["beta"]), proxy.writes(tokens["other"]))
	}
	if _, err := tc.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "ctx", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the ConfigMap survived down: %v", err)
	}
}

// TestContextUnknown proves that a context the kubeconfig lacks, named by --context or by an
// environment in roro.json, is an error that names it, at once, and that nothing is applied.
func TestContextUnknown(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-ctx-unknown")
	dir := testfs.Layout(t, map[string]string{
		"roro.json": `{"name": "contexts", "members": ["apps/*"], "defaultEnvironment": "dev",
  "environments": {"dev": {}, "lost": {"context": "no-such-context"}}}`,
		"apps/ctx/app.json": fmt.Sprintf(`{"namespace": %q, "manifests": ["m.yaml"]}`, ns),
		"apps/ctx/m.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ctx\n",
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })
	for _, tt := range []struct {
		args []string
		name string
	}{
		{[]string{"--context", "nope", "up"}, "nope"},
		{[]string{"--context", "nope", "ps"}, "nope"},
		{[]string{"--context", "nope", "down"}, "nope"},
		{[]string{"up", "-e", "lost"}, "no-such-context"},
	} {
		start := time.Now()
		code, out, errOut := runCLI(t, append(kc, tt.args...)...)
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("roro %v took %s", tt.args, took)
		}
		if code != exitFail || !strings.Contains(errOut, `context "`+tt.name+`"`) {
			t.Errorf("roro %v: exit %d, want 1 and an error naming context %q:\n%s%s", tt.args, code, tt.name, out, errOut)
		}
		if strings.Contains(out+errOut, "not running") || strings.Contains(out, "APP") {
			t.Errorf("roro %v reported a state it did not observe:\n%s%s", tt.args, out, errOut)
		}
	}
	if _, err := tc.Kube.CoreV1().Namespaces().Get(testcluster.Context(t, 10*time.Second), ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s exists after ups that had no context: %v", ns, err)
	}
}
