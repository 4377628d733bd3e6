package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/rorokube/roro/core/render"
	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testfs"
	"github.com/rorokube/roro/internal/testport"
)

// TestMain lets a test run this binary as the roro command (RORO_TEST_MAIN=1), so a test can
// kill a real roro process.
func TestMain(m *testing.M) {
	if os.Getenv("RORO_TEST_MAIN") == "1" {
		main()
		return
	}
	if addr, ok := strings.CutPrefix(os.Getenv("RORO_TEST_CHILD"), "dial:"); ok {
		os.Exit(runChild(addr))
	}
	os.Exit(hermetic(m))
}

// hermetic runs the tests with a state folder of their own, so no test reads or writes the
// user's ~/.local/state/roro (tests that need a state folder of their own still set one).
func hermetic(m *testing.M) int {
	state, err := os.MkdirTemp("", "roro-test-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(state)
	os.Setenv("XDG_STATE_HOME", state)
	return m.Run()
}

// runChild is the process TestRunCommand has roro run: it prints the env it got, sends
// "ping" to addr and prints what comes back, and exits 3.
func runChild(addr string) int {
	fmt.Printf("TOKEN=%s PASSWORD=%s\n", os.Getenv("TOKEN"), os.Getenv("DB_PASSWORD"))
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		fmt.Println("dial:", err)
		return 1
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		fmt.Println("write:", err)
		return 1
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil {
		fmt.Println("read:", err)
		return 1
	}
	fmt.Printf("echo: %s\n", got)
	return 3
}

// appWorkspace lays out a one-app workspace whose app "big" has the given manifests.
func appWorkspace(t *testing.T, namespace string, manifests map[string]string) string {
	files := map[string]string{
		"roro.json":         `{"name": "lifecycle", "members": ["apps/*"]}`,
		"apps/big/app.json": fmt.Sprintf(`{"namespace": %q, "manifests": ["manifests/*.yaml"]}`, namespace),
	}
	for name, body := range manifests {
		files["apps/big/manifests/"+name] = body
	}
	return testfs.Layout(t, files)
}

func configMaps(n int) map[string]string {
	out := map[string]string{}
	for i := range n {
		out[fmt.Sprintf("cm-%02d.yaml", i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%02d\ndata:\n  i: \"%d\"\n", i, i)
	}
	return out
}

// TestUpBadObjectAppliesNothing: in a 20-object app one object fails the server's
// validation; up lists it, and nothing is written: no object is ever created, not even for a
// moment (watched while up runs), and the namespace the dry run needed is gone again.
func TestUpBadObjectAppliesNothing(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-bad")
	manifests := configMaps(19)
	manifests["deploy.yaml"] = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: broken\nspec:\n  replicas: -3\n  selector:\n    matchLabels: {app: x}\n  template:\n    metadata:\n      labels: {app: other}\n    spec:\n      containers: []\n"
	dir := appWorkspace(t, ns, manifests)
	// Watch the namespace's ConfigMaps and Deployments from before up starts: an up that
	// applied and then rolled back would show here.
	wctx, stopWatch := context.WithCancel(testcluster.Context(t, time.Minute))
	defer stopWatch()
	inNS := metav1.ListOptions{FieldSelector: "metadata.namespace=" + ns}
	cmWatch, err := tc.Kube.CoreV1().ConfigMaps("").Watch(wctx, inNS)
	if err != nil {
		t.Fatal(err)
	}
	depWatch, err := tc.Kube.AppsV1().Deployments("").Watch(wctx, inNS)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "--kubeconfig", tc.Kubeconfig, "--workspace", dir, "up")
	if code != exitFail {
		t.Fatalf("up of a bad app: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"the dry run failed", "nothing was applied", "the namespaces and CRDs this up created were removed again", "Deployment " + ns + "/broken", "spec.replicas"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	ctx := testcluster.Context(t, 30*time.Second)
	// The namespace this run made for the deferred dry run is gone again (or going).
	if n, err := tc.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) && (err != nil || n.DeletionTimestamp == nil) {
		t.Errorf("namespace %s remains after a failed dry run: %v", ns, err)
	}
	// The kube-root-ca.crt ConfigMap the controller manager puts in every new namespace is
	// the cluster's own; anything else, left or seen at any moment, was written by up.
	cms, err := tc.Kube.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		if cm.Name != "kube-root-ca.crt" {
			t.Errorf("ConfigMap %s/%s left", ns, cm.Name)
		}
	}
	time.Sleep(time.Second) // let late events of the run arrive
	stopWatch()
	for _, w := range []watch.Interface{cmWatch, depWatch} {
		for ev := range w.ResultChan() {
			if o, ok := ev.Object.(metav1.Object); ok && o.GetName() != "kube-root-ca.crt" {
				t.Errorf("up wrote %s %T %s while failing", ev.Type, ev.Object, o.GetName())
			}
		}
	}
}

// TestUnreachableClusterFailsFast: an API server that accepts connections and never answers
// (the worst case: no refusal to act on) gives a clear error within seconds, not a hang.
func TestUnreachableClusterFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn // accepted, never answered
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	server := "https://" + ln.Addr().String()
	path := testcluster.Kubeconfig(t, "nowhere", server, false)
	dir := appWorkspace(t, "x", configMaps(1))
	done := make(chan struct{})
	var code int
	var errOut string
	go func() {
		code, _, errOut = runCLI(t, "--kubeconfig", path, "--workspace", dir, "ps")
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("ps against an unreachable cluster still runs after 20 s")
	}
	if code != exitFail || !strings.Contains(errOut, `cannot reach the cluster of context "nowhere" at `+server+`: no answer within 5s`) {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// TestStalledClusterFailsFast: a cluster that answers /readyz and then stalls on every other
// request (a wedged API server behind a healthy load balancer) makes up, down, ps and logs
// fail, each in one request's timeout (5 s; the test allows 8 s for start-up on a loaded
// machine) with the reason, not hang (issue 13, item 7).
func TestStalledClusterFailsFast(t *testing.T) {
	var stalled atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			_, _ = w.Write([]byte("ok"))
			return
		}
		stalled.Add(1)
		<-r.Context().Done() // until the client gives up
		// A wedged server never answers: returning would send an empty 200, which races
		// with the client's own cancellation and was once read as the answer.
		panic(http.ErrAbortHandler)
	}))
	t.Cleanup(srv.Close)
	path := testcluster.Kubeconfig(t, "wedged", srv.URL, true)
	dir := appWorkspace(t, "x", configMaps(1))
	for _, args := range [][]string{{"ps"}, {"up"}, {"down"}, {"logs", "big"}} {
		t.Run(args[0], func(t *testing.T) {
			before := stalled.Load()
			start := time.Now()
			done := make(chan struct{})
			var code int
			var errOut string
			go func() {
				code, _, errOut = runCLI(t, append([]string{"--kubeconfig", path, "--workspace", dir}, args...)...)
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("roro %s against a stalled cluster still runs after 30 s", args[0])
			}
			took := time.Since(start)
			if stalled.Load() == before {
				t.Fatalf("roro %s never reached the stalled requests (exit %d): %s", args[0], code, errOut)
			}
			if code != exitFail || took > 8*time.Second || !strings.Contains(errOut, "the API server did not answer in time") {
				t.Errorf("roro %s: exit %d after %s: %s", args[0], code, took.Round(time.Millisecond), errOut)
			}
		})
	}
}

// TestForbiddenNamesVerbAndResource: a user whose Role only reads ConfigMaps gets messages
// that name the verb and the resource it lacks.
func TestForbiddenNamesVerbAndResource(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, time.Minute)
	ns := tc.Namespace(t, "limited")
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns}}
	if _, err := tc.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read-cm", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps", "namespaces"}, Verbs: []string{"get", "list"}}}}
	if _, err := tc.Kube.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "read-cm", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "read-cm"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reader", Namespace: ns}}}
	if _, err := tc.Kube.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := tc.Kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "reader", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := clientcmd.LoadFromFile(tc.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	current := raw.Contexts[raw.CurrentContext]
	raw.AuthInfos["reader"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	raw.Contexts["reader"] = &clientcmdapi.Context{Cluster: current.Cluster, AuthInfo: "reader", Namespace: ns}
	raw.CurrentContext = "reader"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*raw, path); err != nil {
		t.Fatal(err)
	}
	dir := appWorkspace(t, ns, map[string]string{"d.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  k: v\n"})
	code, _, errOut := runCLI(t, "--kubeconfig", path, "--workspace", dir, "up")
	if code != exitFail {
		t.Fatalf("up with a read-only role: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"forbidden", `cannot patch resource "secrets"`, `in the namespace "` + ns + `"`, "ask for a Role that grants it"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	code, _, errOut = runCLI(t, "--kubeconfig", path, "--workspace", dir, "ps")
	if code != exitFail || !strings.Contains(errOut, `cannot list resource "secrets"`) {
		t.Errorf("ps with a read-only role: exit %d: %s", code, errOut)
	}
}

// TestKilledUpRecovers kills a real `roro up` with SIGKILL while it waits for health, with its
// local state removed too, then checks ps finds the instance from the cluster's labels, a
// fixed up finishes, and down removes everything.
func TestKilledUpRecovers(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-killed")
	stuck := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      nodeSelector: {%s}\n      containers:\n      - {name: web, image: example.invalid/web:1}\n"
	manifests := configMaps(5)
	manifests["web.yaml"] = fmt.Sprintf(stuck, "nowhere: 'true'") // never scheduled: up waits
	dir := appWorkspace(t, ns, manifests)
	state := t.TempDir()
	t.Cleanup(func() { runCLI(t, "--kubeconfig", tc.Kubeconfig, "--workspace", dir, "down") })

	cmd := exec.Command(os.Args[0], "--kubeconfig", tc.Kubeconfig, "--workspace", dir, "up", "--timeout", "2m")
	cmd.Env = append(os.Environ(), "RORO_TEST_MAIN=1", "XDG_STATE_HOME="+state)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once up says it applied big and waits for it: by then the objects are in the
	// cluster and the state file records them.
	sc := bufio.NewScanner(stderr)
	applied, waiting := false, false
	for !waiting && sc.Scan() {
		f := strings.Fields(sc.Text()) // "0.4s  big  apply  6 objects"
		applied = applied || (len(f) >= 3 && f[1] == "big" && f[2] == "apply")
		waiting = applied && len(f) >= 3 && f[1] == "big" && f[2] == "wait"
	}
	if !waiting {
		t.Fatal("up never reported big applied and waiting")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if _, err := tc.Kube.AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{}); err != nil {
		t.Fatalf("up was killed before it applied: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(state, "roro", "workspaces", "*.json"))
	if len(files) != 1 {
		t.Fatalf("state files before the loss: %v", files)
	}
	if data, _ := os.ReadFile(files[0]); !strings.Contains(string(data), `"app": "big"`) {
		t.Fatalf("the state did not record big before the kill:\n%s", data)
	}
	if err := os.RemoveAll(filepath.Join(state, "roro")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_STATE_HOME", state)

	code, out, errOut := runCLI(t, "--kubeconfig", tc.Kubeconfig, "--workspace", dir, "ps")
	if code != exitOK || !strings.Contains(out, "big") || !strings.Contains(out, "progressing") || !strings.Contains(out, "Deployment "+ns+"/web") {
		t.Fatalf("ps after the kill: exit %d\n%s%s", code, out, errOut)
	}
	if err := os.WriteFile(filepath.Join(dir, "apps/big/manifests/web.yaml"), []byte(fmt.Sprintf(stuck, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "--kubeconfig", tc.Kubeconfig, "--workspace", dir, "up"); code != exitOK {
		t.Fatalf("up after the kill: exit %d\n%s", code, errOut)
	}
	code, out, _ = runCLI(t, "--kubeconfig", tc.Kubeconfig, "--workspace", dir, "ps")
	if code != exitOK || !strings.Contains(out, "healthy") || !strings.Contains(out, "6/6") {
		t.Errorf("ps after the second up:\n%s", out)
	}
	// A state file cut short (a full disk, an editor) is said, kept aside, and rebuilt from
	// the cluster by the next up.
	files, _ = filepath.Glob(filepath.Join(state, "roro", "workspaces", "*.json"))
	if len(files) != 1 {
		t.Fatalf("state files after the second up: %v", files)
	}
	if err := os.WriteFile(files[0], []byte(`{"workspace": "`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "--kubeconfig", tc.Kubeconfig, "--workspace", dir, "up")
	if code != exitOK || !strings.Contains(errOut, "the local state file "+files[0]+" was corrupt") || !strings.Contains(errOut, "rebuilt from the cluster") {
		t.Errorf("up over a corrupt state: exit %d\n%s", code, errOut)
	}
	if data, _ := os.ReadFile(files[0]); !strings.Contains(string(data), `"app": "big"`) || !json.Valid(data) {
		t.Errorf("the state after the rebuild:\n%s", data)
	}
	if kept, _ := os.ReadFile(files[0] + ".corrupt"); string(kept) != `{"workspace": "` {
		t.Errorf("the corrupt state was not kept aside: %q", kept)
	}
	if code, _, errOut := runCLI(t, "--kubeconfig", tc.Kubeconfig, "--workspace", dir, "down"); code != exitOK {
		t.Fatalf("down: exit %d\n%s", code, errOut)
	}
	ctx := context.Background()
	n, err := tc.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err == nil && n.DeletionTimestamp == nil {
		t.Errorf("namespace %s survived down", ns)
	}
	code, out, _ = runCLI(t, "--kubeconfig", tc.Kubeconfig, "--workspace", dir, "down")
	if code != exitOK || !strings.Contains(out, "big (default) is not running") {
		t.Errorf("second down: exit %d: %s", code, out)
	}
}

// TestSecretsNeverPrinted: every command that shows env, objects or logs is run on apps whose
// secrets really reach that output, and none of them prints a secret in any of its common
// forms. The app vault has three secrets, each chosen so that its forms differ (plain,
// base64 std and URL, JSON-escaped, upper and lower case): a token read from a
// DevEnvironment custom resource and marked secret, a password read from a Secret (secret
// without saying so), and a key read from a host variable and marked secret. Its template
// writes the host key into a ConfigMap as it is, in base64, as JSON, in upper and in lower
// case, so `roro render` (which reads no cluster value: the other two are placeholders
// there) carries a secret, and must show each of those fields masked; `up` writes all
// three into the cluster; a kwok Logs object makes the app's pod log every form of all
// three, so `roro logs` carries them; diff, env and ps run against what up applied; the app
// badlabel's label quotes the token and the API server refuses it, quoting the value in its
// error. Every command must do its job (its exit status as expected, the masked value shown
// where the secret was), and no form of any secret may appear in its stdout or stderr.
func TestSecretsNeverPrinted(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, 2*time.Minute)
	tc.InstallDevEnvironments(t) // the DevEnvironment CRD and the roro-config namespace
	const (
		token    = `Tok3n~~~"<vault>`
		password = `Pa55w0rd?~&Secret`
		hostKey  = `Host-Key>~~~Zebra`
	)
	secrets := map[string]string{"token": token, "password": password, "host key": hostKey}
	for what, v := range secrets {
		for form, f := range secretForms(v) {
			if form != "plain" && f == v {
				t.Fatalf("the %s's %s form is the plain value: pick a value whose forms differ", what, form)
			}
		}
	}
	devEnv := testcluster.UniqueName("vault-env")
	dbSecret := testcluster.UniqueName("vault-db")
	envObj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "demo.roro.dev/v1", "kind": "DevEnvironment",
		"metadata": map[string]any{"name": devEnv, "namespace": "roro-config"},
		"spec":     map[string]any{"tokens": []any{map[string]any{"name": "api", "value": token}}},
	}}
	if err := tc.Apply(ctx, "roro-config", envObj); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: dbSecret, Namespace: "roro-config"}, StringData: map[string]string{"password": password}}
	if _, err := tc.Kube.CoreV1().Secrets("roro-config").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = tc.Kube.CoreV1().Secrets("roro-config").Delete(ctx, dbSecret, metav1.DeleteOptions{})
		if ri, err := tc.Resource(envObj, "roro-config"); err == nil {
			_ = ri.Delete(ctx, devEnv, metav1.DeleteOptions{})
		}
	})
	const hostVar = "RORO_TEST_VAULT_HOST_KEY"
	t.Setenv(hostVar, hostKey) // render, up, env and logs read it, as a shell's export
	secretNS := testcluster.UniqueName("roro-secret-test")
	tokenEnv := `{"name": "TOKEN", "secret": true, "fromObject": {"apiVersion": "demo.roro.dev/v1", "kind": "DevEnvironment",
    "name": "` + devEnv + `", "namespace": "roro-config", "jsonPath": "{.spec.tokens[?(@.name==\"api\")].value}"}}`
	dir := testfs.Layout(t, map[string]string{
		"roro.json": `{"name": "` + testcluster.UniqueName("secrets") + `", "members": ["apps/*"]}`,
		"apps/vault/app.json": `{"namespace": "` + secretNS + `", "manifests": ["m.yaml"], "injectEnv": true,
  "values": {"replicas": 1},
  "env": [` + tokenEnv + `,
    {"name": "DB_PASSWORD", "fromObject": {"apiVersion": "v1", "kind": "Secret", "name": "` + dbSecret + `", "namespace": "roro-config", "jsonPath": "{.data.password}"}},
    {"name": "HOST_KEY", "secret": true, "fromHost": "` + hostVar + `"}]}`,
		"apps/vault/m.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: vault\nspec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels: {app: vault}\n  template:\n    metadata:\n      labels: {app: vault}\n    spec:\n      containers:\n      - {name: c, image: example.invalid/vault:1}\n---\n" +
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leaky\ndata:\n" +
			"  token: {{ .Env.TOKEN | quote }}\n  password: {{ .Env.DB_PASSWORD | b64enc | quote }}\n" +
			"  key: {{ .Env.HOST_KEY | quote }}\n  keyBase64: {{ .Env.HOST_KEY | b64enc | quote }}\n  keyJSON: {{ .Env.HOST_KEY | toJson | quote }}\n" +
			"  keyUpper: {{ .Env.HOST_KEY | upper | quote }}\n  keyLower: {{ .Env.HOST_KEY | lower | quote }}\n",
		// The server refuses this label and quotes its value, the token, in its error.
		"apps/badlabel/app.json": `{"namespace": "` + secretNS + `", "manifests": ["m.yaml"], "env": [` + tokenEnv + `]}`,
		"apps/badlabel/m.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: badlabel\n  labels:\n    token: {{ printf \"%s!!\" .Env.TOKEN | quote }}\n",
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })
	// check runs roro, fails the test on any form of a secret in its output, and returns it.
	check := func(args ...string) (int, string, string) {
		t.Helper()
		code, out, errOut := runCLI(t, append(kc, args...)...)
		for _, leak := range leaks(out+errOut, secrets) {
			t.Errorf("roro %s printed the %s:\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), leak, out, errOut)
		}
		return code, out, errOut
	}
	wantOK := func(args ...string) string {
		t.Helper()
		code, out, errOut := check(args...)
		if code != exitOK {
			t.Fatalf("roro %s: exit %d:\n%s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	// render reads no cluster value, but the host key is in every form in its output.
	for format, fields := range map[string][]string{
		"yaml": {`key: '******'`, `keyBase64: '******'`, `keyJSON: '"******"'`, `keyUpper: '******'`, `keyLower: '******'`},
		"json": {`"key": "******"`, `"keyBase64": "******"`, `"keyJSON": "\"******\""`, `"keyUpper": "******"`, `"keyLower": "******"`},
	} {
		out := wantOK("render", "vault", "-o", format)
		for _, field := range fields {
			if !strings.Contains(out, field) {
				t.Errorf("render -o %s does not show %s:\n%s", format, field, out)
			}
		}
	}
	wantOK("up", "vault")
	code, _, errOut := check("up", "badlabel")
	if code != exitFail || !strings.Contains(errOut, `Invalid value: "******!!"`) {
		t.Errorf("roro up badlabel: exit %d, want the server's refusal with the token masked:\n%s", code, errOut)
	}
	// What up applied holds every secret in clear: the commands below had them to print.
	cm, err := tc.Kube.CoreV1().ConfigMaps(secretNS).Get(ctx, "leaky", metav1.GetOptions{})
	if err != nil || cm.Data["token"] != token || cm.Data["key"] != hostKey || cm.Data["password"] != base64.StdEncoding.EncodeToString([]byte(password)) {
		t.Fatalf("the applied ConfigMap does not hold the secrets: %v %q", err, cm.Data)
	}
	envSecret, err := tc.Kube.CoreV1().Secrets(secretNS).Get(ctx, "roro-env-vault", metav1.GetOptions{})
	if err != nil || string(envSecret.Data["TOKEN"]) != token || string(envSecret.Data["HOST_KEY"]) != hostKey {
		t.Errorf("env Secret: %v", err)
	}
	// The pod logs every form of every secret, and a last line to know the log is whole.
	pods, err := tc.WaitPods(ctx, secretNS, "app=vault", 1)
	if err != nil {
		t.Fatal(err)
	}
	var logText strings.Builder
	var logged []string
	for _, what := range slices.Sorted(maps.Keys(secrets)) {
		forms := secretForms(secrets[what])
		for _, form := range slices.Sorted(maps.Keys(forms)) {
			line := what + " " + form + ": " + forms[form]
			logged = append(logged, what+" "+form+": "+render.SecretMask)
			fmt.Fprintf(&logText, "%s stdout F %s\n", time.Now().UTC().Format(time.RFC3339Nano), line)
		}
	}
	fmt.Fprintf(&logText, "%s stdout F end of the vault log\n", time.Now().UTC().Format(time.RFC3339Nano))
	tc.ServeLog(ctx, t, secretNS, pods[0].Name, "c", logText.String(), false)
	// kwok serves the log once it has seen the Logs object: until then, logs says it cannot
	// read it. Every attempt's output is checked for the secrets all the same.
	var logsOut string
	var logsCode int
	err = testcluster.Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		logsCode, logsOut, _ = check("logs", "vault")
		return logsCode == exitOK && strings.Contains(logsOut, "end of the vault log"), nil
	})
	if err != nil {
		t.Fatalf("roro logs vault never showed the whole log: exit %d: %v\n%s", logsCode, err, logsOut)
	}
	for _, line := range logged {
		if !strings.Contains(logsOut, "] "+line+"\n") {
			t.Errorf("roro logs vault lacks the line %q:\n%s", line, logsOut)
		}
	}
	for _, args := range [][]string{{"env", "vault"}, {"env", "vault", "-o", "json"}} {
		if out := wantOK(args...); strings.Count(out, render.SecretMask) < 3 {
			t.Errorf("roro %s does not show the three secrets masked:\n%s", strings.Join(args, " "), out)
		}
	}
	// diff answers 1 when live objects differ, and says no more on stderr.
	code, out, errOut := check("diff", "vault", "--set", "replicas=2")
	if code != exitFail || strings.Contains(errOut, "roro: ") || !strings.Contains(out, "+  replicas: 2") {
		t.Errorf("roro diff: exit %d, want 1 with the change of replicas:\n%s%s", code, out, errOut)
	}
	for _, args := range [][]string{{"ps"}, {"ps", "-o", "json"}, {"ps", "-o", "wide"}} {
		if out := wantOK(args...); !strings.Contains(out, secretNS) {
			t.Errorf("roro %s does not list vault:\n%s", strings.Join(args, " "), out)
		}
	}
	// --export writes the values in clear, mode 0600.
	envFile := filepath.Join(t.TempDir(), "vault.env")
	if code, _, errOut := runCLI(t, append(kc, "env", "vault", "--export", envFile)...); code != exitOK {
		t.Fatalf("export: %s", errOut)
	}
	info, err := os.Stat(envFile)
	data, _ := os.ReadFile(envFile)
	want := "DB_PASSWORD='" + password + "'\nHOST_KEY='" + hostKey + "'\nTOKEN='" + token + "'\n"
	if err != nil || info.Mode().Perm() != 0o600 || string(data) != want {
		t.Errorf("exported file: %v, mode %v, %q", err, info.Mode().Perm(), data)
	}
}

// secretForms are the forms of a secret value that a leak would print it in: as it is,
// base64 (standard and URL alphabets; unpadded, so the padded forms match too), escaped in a
// JSON string, and upper and lower case.
func secretForms(v string) map[string]string {
	j, _ := json.Marshal(v)
	return map[string]string{
		"plain":      v,
		"base64":     base64.RawStdEncoding.EncodeToString([]byte(v)),
		"base64url":  base64.RawURLEncoding.EncodeToString([]byte(v)),
		"JSON":       string(j[1 : len(j)-1]),
		"upper case": strings.ToUpper(v),
		"lower case": strings.ToLower(v),
	}
}

// leaks names every secret of secrets (by what it is) that appears in out in one of its
// forms, with the form.
func leaks(out string, secrets map[string]string) []string {
	var found []string
	for _, what := range slices.Sorted(maps.Keys(secrets)) {
		forms := secretForms(secrets[what])
		for _, form := range slices.Sorted(maps.Keys(forms)) {
			if strings.Contains(out, forms[form]) {
				found = append(found, what+" ("+form+")")
			}
		}
	}
	return found
}

// TestDownKeepsVolumes: down keeps a PersistentVolumeClaim the app owns, and the namespace
// roro created for it while it holds the claim, saying so; down --volumes removes both.
func TestDownKeepsVolumes(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-volumes-test")
	dir := appWorkspace(t, ns, map[string]string{
		"pvc.yaml": "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests: {storage: 1Gi}\n",
		"cm.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n",
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down", "--volumes")...) })
	// No storage provisioner here: the claim stays Pending, so do not wait for health.
	if code, _, errOut := runCLI(t, append(kc, "up", "--no-wait")...); code != exitOK {
		t.Fatalf("up: %s", errOut)
	}
	code, _, errOut := runCLI(t, append(kc, "down")...)
	if code != exitOK {
		t.Fatalf("down: %s", errOut)
	}
	for _, want := range []string{"kept     PersistentVolumeClaim " + ns + "/data", "Namespace " + ns + " (it holds PersistentVolumeClaims data; --volumes deletes them)"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("down output lacks %q:\n%s", want, errOut)
		}
	}
	ctx := testcluster.Context(t, 30*time.Second)
	if _, err := tc.Kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{}); err != nil {
		t.Errorf("down deleted the claim: %v", err)
	}
	if _, err := tc.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("down kept the ConfigMap: %v", err)
	}
	// The claim is no longer an inventory member; --volumes removes it with the namespace.
	if code, _, errOut := runCLI(t, append(kc, "up", "--no-wait")...); code != exitOK {
		t.Fatalf("second up: %s", errOut)
	}
	if code, _, errOut := runCLI(t, append(kc, "down", "--volumes")...); code != exitOK {
		t.Fatalf("down --volumes: %s", errOut)
	}
	n, err := tc.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err == nil && n.DeletionTimestamp == nil {
		t.Errorf("down --volumes kept namespace %s", ns)
	}
}

// TestRestartCommand: restart of an app that is not up says so; after up, it replaces the
// pods of its Deployment and prints the steps.
func TestRestartCommand(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-restart-cli")
	dep := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: big\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: big}\n  template:\n    metadata:\n      labels: {app: big}\n    spec:\n      containers:\n      - {name: c, image: example.invalid/big:1}\n"
	dir := appWorkspace(t, ns, map[string]string{"d.yaml": dep})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })
	code, _, errOut := runCLI(t, append(kc, "restart", "big")...)
	if code != exitFail || !strings.Contains(errOut, "big (default) is not running: start it with `roro up big`") {
		t.Fatalf("restart before up: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, append(kc, "up")...); code != exitOK {
		t.Fatalf("up: %s", errOut)
	}
	code, _, errOut = runCLI(t, append(kc, "restart", "big")...)
	if code != exitOK || !strings.Contains(errOut, "restart  Deployment "+ns+"/big") || !strings.Contains(errOut, "1 workloads restarted") {
		t.Fatalf("restart: exit %d: %s", code, errOut)
	}
	d, err := tc.Kube.AppsV1().Deployments(ns).Get(context.Background(), "big", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" {
		t.Errorf("no restartedAt: %v %v", err, d.Spec.Template.Annotations)
	}
}

// TestCtrlCStopsUp: Ctrl-C during up's wait for health stops it at that step, says so, and
// leaves what was applied; the next up carries on from there.
func TestCtrlCStopsUp(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-ctrl-c")
	stuck := "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: never-bound\nspec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: none\n  resources:\n    requests: {storage: 1Mi}\n"
	dir := appWorkspace(t, ns, map[string]string{"pvc.yaml": stuck, "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n"})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down", "--volumes")...) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut lockedBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, append(kc, "up"), &out, &errOut) }()
	err := testcluster.Poll(testcluster.Context(t, 30*time.Second), 20*time.Millisecond, func() (bool, error) {
		return strings.Contains(errOut.String(), "wait     PersistentVolumeClaim "+ns+"/never-bound"), nil
	})
	if err != nil {
		t.Fatalf("up never waited on the claim: %v\n%s", err, errOut.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != exitFail || !strings.Contains(errOut.String(), "roro: up cancelled at its wait step; what it did stays (run it again to carry on)") {
			t.Errorf("exit %d:\n%s", code, errOut.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("up did not end within 5 s of Ctrl-C")
	}
	if _, err := tc.Kube.CoreV1().ConfigMaps(ns).Get(context.Background(), "kept", metav1.GetOptions{}); err != nil {
		t.Errorf("what up applied before Ctrl-C is gone: %v", err)
	}
}

// TestCtrlCStopsARender: a template that would run for hours does not hold roro: Ctrl-C ends
// render at once, and the worker process running the template with it.
func TestCtrlCStopsARender(t *testing.T) {
	dir := appWorkspace(t, "x", map[string]string{"loop.yaml": "a: {{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}\n"})
	cmd := exec.Command(os.Args[0], "--workspace", dir, "render", "big")
	cmd.Env = append(os.Environ(), "RORO_TEST_MAIN=1")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var workers []string
	eventuallyTrue(t, 5*time.Second, func() bool {
		workers = childPIDs(cmd.Process.Pid)
		return len(workers) > 0
	})
	time.Sleep(300 * time.Millisecond) // rendering by now
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		if !strings.Contains(errOut.String(), "app big: manifests/loop.yaml: render stopped") {
			t.Errorf("stderr: %s", errOut.String())
		}
	case <-time.After(3 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("render did not end within 3 s of Ctrl-C")
	}
	for _, pid := range workers {
		eventuallyTrue(t, 2*time.Second, func() bool {
			_, err := os.Stat("/proc/" + pid)
			return os.IsNotExist(err)
		})
	}
}

// childPIDs lists the children of process pid.
func childPIDs(pid int) []string {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []string
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		out = append(out, strings.Fields(string(b))...)
	}
	return out
}

// eventuallyTrue polls cond every 20 ms until it holds, failing the test after timeout.
func eventuallyTrue(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v", timeout)
		}
	}
}

// TestUnreachableSaidOnce: with the cluster down, down and ps say so once, with the context
// and the cause, and never report a state they did not observe (no "is not running", no
// empty table), across two apps and two environments on that cluster.
func TestUnreachableSaidOnce(t *testing.T) {
	path := testcluster.Kubeconfig(t, "gone", "https://127.0.0.1:1", false)
	dir := testfs.Layout(t, map[string]string{
		"roro.json":       `{"name": "u", "members": ["apps/*"], "environments": {"dev": {}, "staging": {}}, "defaultEnvironment": "dev"}`,
		"apps/a/app.json": `{"manifests": ["m.yaml"]}`,
		"apps/a/m.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
		"apps/b/app.json": `{"manifests": ["m.yaml"]}`,
		"apps/b/m.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
	})
	const cause = `cannot reach the cluster of context "gone" at https://127.0.0.1:1`
	for _, args := range [][]string{{"down"}, {"ps"}} {
		code, out, errOut := runCLI(t, append([]string{"--kubeconfig", path, "--workspace", dir}, args...)...)
		if code != exitFail || strings.Count(errOut, cause) != 1 {
			t.Errorf("roro %s: exit %d, the cause %d times:\n%s", args[0], code, strings.Count(errOut, cause), errOut)
		}
		if strings.Contains(out+errOut, "not running") || strings.Contains(out, "APP") {
			t.Errorf("roro %s reported a state it did not observe:\n%s%s", args[0], out, errOut)
		}
	}
}

// TestDiffExitAndSecrets: diff exits 0 with nothing to change and 1 with differences, as
// kubectl diff does; a Secret's changed key is listed as changed with its value hidden; an
// external diff program (KUBECTL_EXTERNAL_DIFF) gets live/ and rendered/ folders; no colour
// into a pipe (issue 12, item 6).
func TestDiffExitAndSecrets(t *testing.T) {
	tc := testcluster.Get(t)
	ns := testcluster.UniqueName("roro-diff-test")
	dir := testfs.Layout(t, map[string]string{
		"roro.json":       `{"name": "d", "members": ["apps/*"]}`,
		"apps/s/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"], "values": {"password": "first-Pa55word", "level": "info"}}`,
		"apps/s/m.yaml":   "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: {{ .Values.password }}\n  user: admin\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\ndata:\n  level: {{ .Values.level }}\n",
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })
	if code, _, errOut := runCLI(t, append(kc, "up")...); code != exitOK {
		t.Fatalf("up: %s", errOut)
	}
	if code, out, errOut := runCLI(t, append(kc, "diff", "s")...); code != exitOK || out != "" {
		t.Fatalf("diff with nothing to change: exit %d, %q %s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, append(kc, "ps", "-o", "yaml")...); code != exitOK || !strings.Contains(out, "- app: s\n") || !strings.Contains(out, "namespace: "+ns) {
		t.Errorf("ps -o yaml: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := runCLI(t, append(kc, "diff", "s", "--set", "password=second-Pa55word,level=debug")...)
	if code != exitFail || errOut != "" {
		t.Errorf("diff with changes: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"+  password: '****** (changed)'", "-  level: info", "+  level: debug"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Pa55word") || strings.Contains(out, "user: '****** (changed)'") || strings.Contains(out, "\x1b[") {
		t.Errorf("diff shows a secret, marks an unchanged key, or colours a pipe:\n%s", out)
	}
	t.Setenv("KUBECTL_EXTERNAL_DIFF", "diff -r -u -N")
	code, out, _ = runCLI(t, append(kc, "diff", "s", "--set", "level=debug")...)
	if code != exitFail || !strings.Contains(out, "/live/ConfigMap."+ns+".conf.yaml") || !strings.Contains(out, "+  level: debug") {
		t.Errorf("external diff: exit %d\n%s", code, out)
	}
}

// TestWarningsAsKubectl: the API server's warnings come out as kubectl prints them, each
// once: "Warning: …" (issue 12, item 7).
func TestWarningsAsKubectl(t *testing.T) {
	tc := testcluster.Get(t)
	dir := testfs.Layout(t, map[string]string{
		"roro.json":       `{"name": "w", "members": ["apps/*"]}`,
		"apps/w/app.json": `{"namespace": "` + testcluster.UniqueName("roro-warn-test") + `", "manifests": ["m.yaml"]}`,
		"apps/w/m.yaml":   "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: w\n  annotations:\n    kubernetes.io/ingress.class: nginx\nspec:\n  defaultBackend:\n    service:\n      name: w\n      port: {number: 80}\n",
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })
	code, _, errOut := runCLI(t, append(kc, "up", "--no-wait")...)
	if code != exitOK {
		t.Fatalf("up: %s", errOut)
	}
	if strings.Count(errOut, `Warning: annotation "kubernetes.io/ingress.class" is deprecated`) != 1 || strings.Contains(errOut, "warnings.go") {
		t.Errorf("stderr:\n%s", errOut)
	}
}

// TestLogsSeveralApps: `roro logs` with no app streams every running app's pods, and with
// several the named ones, each line prefixed with its app, as docker compose logs does.
func TestLogsSeveralApps(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, 45*time.Second)
	ns := testcluster.UniqueName("roro-logs-cli")
	deployment := func(name string) string {
		return "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: " + name + "\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: " + name + "}\n  template:\n    metadata:\n      labels: {app: " + name + "}\n    spec:\n      containers:\n      - {name: c, image: example.invalid/x:1}\n"
	}
	dir := testfs.Layout(t, map[string]string{
		"roro.json":         `{"name": "logs", "members": ["apps/*"]}`,
		"apps/one/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"]}`,
		"apps/one/m.yaml":   deployment("one"),
		"apps/two/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"]}`,
		"apps/two/m.yaml":   deployment("two"),
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })
	if code, _, errOut := runCLI(t, append(kc, "up")...); code != exitOK {
		t.Fatalf("up: %s", errOut)
	}
	for _, app := range []string{"one", "two"} {
		pods, err := tc.WaitPods(ctx, ns, "app="+app, 1)
		if err != nil {
			t.Fatal(err)
		}
		tc.ServeLog(ctx, t, ns, pods[0].Name, "c", testcluster.CRILine(time.Now(), "hello from "+app), false)
	}
	for _, args := range [][]string{{"logs"}, {"logs", "one", "two"}} {
		var out string
		err := testcluster.Poll(ctx, 200*time.Millisecond, func() (bool, error) {
			_, out, _ = runCLI(t, append(kc, args...)...)
			return strings.Contains(out, "hello from one") && strings.Contains(out, "hello from two"), nil
		})
		if err != nil || !regexp.MustCompile(`(?m)^one \| \[one-[a-z0-9-]+/c\] hello from one$`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^two \| \[two-[a-z0-9-]+/c\] hello from two$`).MatchString(out) {
			t.Errorf("roro %v: %v\n%s", args, err, out)
		}
	}
}

// TestRunCommand: roro run starts a local process with the app's env (a secret read from a
// Secret, a token read from the DevEnvironment custom resource) and the forward of the app
// it depends on, which the process reaches; roro exits with the process's status.
func TestRunCommand(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, time.Minute)
	tc.InstallDevEnvironments(t)
	const password = "run-pa55word-from-a-secret"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "run-db", Namespace: "roro-config"}, StringData: map[string]string{"password": password}}
	if _, err := tc.Kube.CoreV1().Secrets("roro-config").Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	port := testport.Reserve(t).Number // the forward's local port, written into app.json
	ns := testcluster.UniqueName("roro-run-test")
	dir := testfs.Layout(t, map[string]string{
		"roro.json":          `{"name": "run", "members": ["apps/*"]}`,
		"apps/echo/app.json": fmt.Sprintf(`{"namespace": %q, "manifests": ["m.yaml"], "forwards": [{"target": "deployment/echo", "ports": ["%d:tcp"]}]}`, ns, port),
		"apps/echo/m.yaml":   "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: echo\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: echo}\n  template:\n    metadata:\n      labels: {app: echo}\n    spec:\n      containers:\n      - name: echo\n        image: example.invalid/echo:1\n        ports:\n        - {name: tcp, containerPort: 7000}\n",
		"apps/client/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"], "dependsOn": ["echo"],
  "env": [{"name": "TOKEN", "secret": true, "fromObject": {"apiVersion": "demo.roro.dev/v1", "kind": "DevEnvironment",
    "name": "dev", "namespace": "roro-config", "jsonPath": "{.spec.tokens[?(@.name==\"api\")].value}"}},
    {"name": "DB_PASSWORD", "fromObject": {"apiVersion": "v1", "kind": "Secret", "name": "run-db", "namespace": "roro-config", "jsonPath": "{.data.password}"}}]}`,
		"apps/client/m.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: client\n",
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })
	if code, _, errOut := runCLI(t, append(kc, "up", "--no-wait")...); code != exitOK {
		t.Fatalf("up: %s", errOut)
	}
	binder := testcluster.StartBinder(t, tc, ns, "app=echo", testcluster.Echo)
	pods, err := tc.WaitPods(ctx, ns, "app=echo", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := binder.WaitBound(ctx, pods[0].Name); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RORO_TEST_CHILD", fmt.Sprintf("dial:127.0.0.1:%d", port))
	code, out, errOut := runCLI(t, append(kc, "run", "client", "--", os.Args[0])...)
	if code != 3 {
		t.Errorf("roro run exited %d, want the process's 3\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"TOKEN=dev-token-0f3c9a", "PASSWORD=" + password, "echo: ping"} {
		if !strings.Contains(out, want) {
			t.Errorf("the process did not print %q:\n%s\n%s", want, out, errOut)
		}
	}
	if !strings.Contains(errOut, "roro: running "+os.Args[0]+" with client's env (DB_PASSWORD, TOKEN) and forwards echo 127.0.0.1:") {
		t.Errorf("stderr:\n%s", errOut)
	}
	if code, _, errOut := runCLI(t, append(kc, "run", "client")...); code != exitUsage || !strings.Contains(errOut, "needs an app, then --") {
		t.Errorf("run without a command: %d %s", code, errOut)
	}
}

// TestExecCommand: roro exec runs a command in the app's first Ready pod (kwok runs it on
// this machine, as its Exec object says), with piped input, and exits with its status.
func TestExecCommand(t *testing.T) {
	tc := testcluster.Get(t)
	ctx := testcluster.Context(t, time.Minute)
	ns := testcluster.UniqueName("roro-exec-test")
	dir := testfs.Layout(t, map[string]string{
		"roro.json":         `{"name": "x", "members": ["apps/*"]}`,
		"apps/box/app.json": `{"namespace": "` + ns + `", "manifests": ["m.yaml"]}`,
		"apps/box/m.yaml":   "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: box\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: box}\n  template:\n    metadata:\n      labels: {app: box}\n    spec:\n      containers:\n      - {name: main, image: example.invalid/box:1}\n",
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })
	if code, _, errOut := runCLI(t, append(kc, "up")...); code != exitOK {
		t.Fatalf("up: %s", errOut)
	}
	pods, err := tc.WaitPods(ctx, ns, "app=box", 1)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "marker"), []byte("inside the pod\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	execObj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Exec",
		"metadata": map[string]any{"name": pods[0].Name, "namespace": ns},
		"spec":     map[string]any{"execs": []any{map[string]any{"local": map[string]any{"workDir": work}}}},
	}}
	if err := tc.Apply(ctx, ns, execObj); err != nil {
		t.Fatal(err)
	}
	var out, errOut string
	var code int
	err = testcluster.Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		code, out, errOut = runCLI(t, append(kc, "exec", "box", "--", "cat", "marker")...)
		return code == exitOK, nil // kwok may not have the Exec object yet
	})
	if err != nil || out != "inside the pod\n" {
		t.Fatalf("exec cat: exit %d, %q %s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, append(kc, "exec", "box", "--", "sh", "-c", "exit 4")...); code != 4 {
		t.Errorf("exec exit 4: roro exited %d: %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, append(kc, "exec", "box")...); code != exitUsage || !strings.Contains(errOut, "needs an app, then --") {
		t.Errorf("exec without a command: %d %s", code, errOut)
	}

	// A proxy that refuses the WebSocket upgrade (as some load balancers do): exec falls
	// back to SPDY, as kubectl does.
	var refused, spdy atomic.Int64
	proxied := apiProxy(t, tc, func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/exec") {
			return false
		}
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			refused.Add(1)
			http.Error(w, "no websockets here", http.StatusForbidden)
			return true
		}
		spdy.Add(1)
		return false
	})
	code, out, errOut = runCLI(t, "--kubeconfig", proxied, "--workspace", dir, "exec", "box", "--", "cat", "marker")
	if code != exitOK || out != "inside the pod\n" || refused.Load() != 1 || spdy.Load() != 1 {
		t.Errorf("exec through a proxy that refuses WebSocket: exit %d, %q %s; %d refused, %d over SPDY", code, out, errOut, refused.Load(), spdy.Load())
	}

	// -i passes roro's input on. kwok's local exec never closes the command's input at EOF
	// (kubectl exec -i hangs there alike), so the command reads one line rather than to EOF.
	roro := func(stdin string, args ...string) *exec.Cmd {
		c := exec.CommandContext(ctx, os.Args[0], append(kc, args...)...)
		c.Env = append(os.Environ(), "RORO_TEST_MAIN=1")
		c.Stdin = strings.NewReader(stdin)
		return c
	}
	got, err := roro("through stdin\n", "exec", "-i", "box", "--", "sh", "-c", `read x; echo "got: $x"`).CombinedOutput()
	if err != nil || string(got) != "got: through stdin\n" {
		t.Errorf("exec -i: %v %q", err, got)
	}
	// -t with no terminal on roro's input says so and runs without one, as kubectl does.
	got, err = roro("", "exec", "-t", "box", "--", "sh", "-c", "tty || true").CombinedOutput()
	if err != nil || !strings.Contains(string(got), "Unable to use a TTY") || !strings.Contains(string(got), "not a tty") {
		t.Errorf("exec -t without a terminal: %v %q", err, got)
	}
	// -it from a terminal (script gives roro one): the command gets a terminal of its own,
	// and what is typed once it asks reaches it (typed earlier, a starting shell may flush it).
	line := strings.Join(append([]string{shellQuote(os.Args[0])}, append(quoteAll(kc), "exec", "-it", "box", "--", "sh", "-c", shellQuote(`tty; echo ready; read x; echo "typed: $x"`))...), " ")
	itCtx := testcluster.Context(t, time.Minute) // its own minute: the test's may be spent by now on a loaded machine
	sc := exec.CommandContext(itCtx, "script", "-qec", line, "/dev/null")
	sc.Env = append(os.Environ(), "RORO_TEST_MAIN=1")
	// An OS pipe: a write after script has ended fails at once (an io.Pipe would wait).
	typist, err := sc.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var screen lockedBuffer
	sc.Stdout, sc.Stderr = &screen, &screen
	sc.WaitDelay = 3 * time.Second // roro, script's child, may hold the output pipe past script
	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	err = testcluster.Poll(itCtx, 20*time.Millisecond, func() (bool, error) { return strings.Contains(screen.String(), "ready"), nil })
	// kwok's local exec at times leaves the first line typed into a fresh pod's terminal
	// unread although its terminal echoes it back (so roro delivered it): seen in 2 of 9
	// manual runs of roro under -race, in none of 3 of kubectl. Type it again, as a person
	// would, up to three times.
	for try := 0; err == nil; try++ {
		if _, err = typist.Write([]byte("on a terminal\n")); err != nil {
			break
		}
		err = testcluster.Poll(testcluster.Context(t, 5*time.Second), 20*time.Millisecond, func() (bool, error) {
			return strings.Contains(screen.String(), "typed: "), nil
		})
		if err == nil || try == 2 {
			break
		}
		err = nil
	}
	typist.Close()
	if err != nil {
		_ = sc.Process.Kill() // the terminal goes, and roro with it (SIGHUP)
	}
	werr := sc.Wait()
	got = []byte(screen.String())
	if err != nil || werr != nil || !regexp.MustCompile(`/dev/pts/\d+`).Match(got) || !strings.Contains(string(got), "typed: on a terminal") {
		t.Errorf("exec -it: %v %v %q", err, werr, got)
	}
}

// apiProxy serves the test API server over plain HTTP on loopback and writes a kubeconfig
// for it; intercept may answer a request itself (and return true) before it goes on.
func apiProxy(t *testing.T, tc *testcluster.Cluster, intercept func(http.ResponseWriter, *http.Request) bool) string {
	t.Helper()
	rp := tc.ReverseProxy(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !intercept(w, r) {
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return testcluster.Kubeconfig(t, "proxy", srv.URL, false)
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = shellQuote(s)
	}
	return out
}
