package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rorokube/roro/internal/sandbox"
	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testport"
)

// TestDemoEndToEnd: the demo workspace, as a user runs it from the command line, on the test
// control plane with the sandbox answering for its pods: `up` brings db, api and web up
// healthy; `up --forward` forwards each app's ports, where api (HTTP and HTTPS) and web answer
// as the echo image does (web with its API_URL in the answer) and db answers pg_isready; after Ctrl-C the
// ports are free; `down` leaves none of the demo's workloads.
func TestDemoEndToEnd(t *testing.T) {
	tc := testcluster.Get(t)
	tc.InstallDevEnvironments(t)
	ctx := testcluster.Context(t, 2*time.Minute)
	dir := demoCopy(t, "cli-")
	// The demo's forwards have fixed ports: held for this test, so only roro binds them.
	for _, p := range []int{18080, 18443, 3000, 15432} {
		testport.ReserveAt(t, p)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 3)
	for _, ns := range []string{"cli-demo-db", "cli-demo-api", "cli-demo-web"} {
		go func() { served <- sandbox.Serve(sctx, tc.Config.Host, ns, tc.Kube, tc.Dynamic) }()
	}
	t.Cleanup(func() {
		stop()
		for range 3 {
			<-served
		}
	})
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })

	if code, out, errOut := runCLI(t, append(kc, "up")...); code != exitOK {
		t.Fatalf("up: exit %d\n%s%s", code, out, errOut)
	}
	_, out, _ := runCLI(t, append(kc, "ps")...)
	for _, app := range []string{"db", "api", "web"} {
		if !rowHas(out, app, "healthy") {
			t.Errorf("ps after up: %s is not healthy\n%s", app, out)
		}
	}

	fw := exec.Command(os.Args[0], append(kc, "up", "--forward")...)
	fw.Env = append(os.Environ(), "RORO_TEST_MAIN=1")
	stdout, err := fw.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	fw.Stderr = fw.Stdout
	if err := fw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fw.Process.Kill(); _ = fw.Wait() })
	var printed strings.Builder
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	connected := map[string]bool{}
	for len(connected) < 3 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("roro up --forward ended:\n%s", printed.String())
			}
			printed.WriteString(l + "\n")
			for _, svc := range []string{"service/api", "service/web", "service/db"} {
				if strings.Contains(l, svc) && strings.Contains(l, "connected") {
					connected[svc] = true
				}
			}
		case <-ctx.Done():
			t.Fatalf("the demo's forwards never all connected:\n%s", printed.String())
		}
	}
	go func() {
		for range lines {
		}
	}()

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the echo's HTTPS is self-signed
	for _, c := range []struct{ url, pod string }{{"http://127.0.0.1:18080/hello", "api-"}, {"https://127.0.0.1:18443/hello", "api-"}, {"http://127.0.0.1:3000/", "web-"}} {
		var answer struct {
			Path string
			OS   struct{ Hostname string }
			Env  map[string]string
		}
		err := testcluster.Poll(ctx, 200*time.Millisecond, func() (bool, error) {
			resp, err := client.Get(c.url)
			if err != nil {
				return false, nil
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == http.StatusOK && json.Unmarshal(b, &answer) == nil, nil
		})
		if err != nil || !strings.HasPrefix(answer.OS.Hostname, c.pod) {
			t.Errorf("GET %s: %v, answered by %q", c.url, err, answer.OS.Hostname)
		}
		if c.pod == "web-" && answer.Env["API_URL"] != "http://api.demo-api.svc" {
			t.Errorf("web's answer does not show its API_URL: %v", answer.Env)
		}
	}
	if out, err := exec.Command("pg_isready", "-h", "127.0.0.1", "-p", "15432", "-t", "10").CombinedOutput(); err != nil || !strings.Contains(string(out), "accepting connections") {
		t.Errorf("pg_isready through db's forward: %v: %s", err, out)
	}

	_ = fw.Process.Signal(syscall.SIGINT)
	if err := fw.Wait(); err != nil {
		t.Errorf("roro up --forward after Ctrl-C: %v\n%s", err, printed.String())
	}
	for _, p := range []string{"18080", "3000", "15432"} {
		if resp, err := http.Get("http://127.0.0.1:" + p + "/"); err == nil {
			resp.Body.Close()
			t.Errorf("port %s still answers after Ctrl-C", p)
		}
	}

	if code, out, errOut := runCLI(t, append(kc, "down")...); code != exitOK {
		t.Fatalf("down: exit %d\n%s%s", code, out, errOut)
	}
	for _, ns := range []string{"cli-demo-db", "cli-demo-api", "cli-demo-web"} {
		deps, err := tc.Kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		sets, err2 := tc.Kube.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil || err2 != nil || len(deps.Items)+len(sets.Items) != 0 {
			t.Errorf("after down, %s still has workloads (%v %v)", ns, err, err2)
		}
	}
}
