package sandbox

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPodPortSpeaksTheClientsProtocol: a sandbox pod's port answers PostgreSQL's own clients
// as the demo's postgres image would let them in (pg_isready: accepting connections; psql
// connects, and a query gets an error saying no database runs), and HTTP on the same port as
// the echo image, plain and in TLS, while another client sits connected saying nothing.
func TestPodPortSpeaksTheClientsProtocol(t *testing.T) {
	for _, tool := range []string{"pg_isready", "psql"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not on PATH (ci/deps installs postgresql-client)", tool)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "demo-db"}}
	cfg, err := selfSignedTLS(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = http.Serve(newSniffListener(ln, cfg), echoAnswer(pod)) }()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	// A client that connects and says nothing holds up no other.
	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	out, err := exec.Command("pg_isready", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", "demo", "-t", "5").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "accepting connections") {
		t.Errorf("pg_isready: %v: %s", err, out)
	}
	for _, sslmode := range []string{"disable", "prefer"} { // prefer asks for TLS first
		cmd := exec.Command("psql", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", "demo", "-w", "-c", "select 1")
		cmd.Env = append(cmd.Environ(), "PGSSLMODE="+sslmode, "PGCONNECT_TIMEOUT=5")
		out, err = cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "the Roro sandbox runs no database") {
			t.Errorf("psql (sslmode %s): %v: %s", sslmode, err, out)
		}
	}
	// HTTP and HTTPS (a self-signed certificate, as the echo image's: curl -k) on the same port.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, scheme := range []string{"http", "https"} {
		resp, err := insecure.Get(scheme + "://127.0.0.1:" + port + "/")
		if err != nil {
			t.Errorf("%s on the same port: %v", scheme, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"hostname": "db-0"`) || !strings.Contains(string(b), `"protocol": "`+scheme+`"`) {
			t.Errorf("%s on the same port: %s", scheme, b)
		}
	}
}
