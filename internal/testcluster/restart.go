package testcluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvDisruptive names the variable that allows tests which stop parts of the control plane;
// ci/test sets it for a separate run after the main suite, so no other test sees the outage.
const EnvDisruptive = "RORO_DISRUPTIVE_TESTS"

// Disruptive skips the test unless disruptive tests are allowed.
func Disruptive(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvDisruptive) != "1" {
		t.Skipf("stops the shared API server: runs only with %s=1 (ci/test runs it after the main suite)", EnvDisruptive)
	}
}

// APIServer is the test cluster's kube-apiserver process, as kwokctl started it.
type APIServer struct {
	pidFile string
	args    []string
	env     []string
	dir     string
	logPath string
}

// FindAPIServer finds the API server's process from the pid file kwokctl wrote beside the
// cluster's kubeconfig.
func (c *Cluster) FindAPIServer(t testing.TB) *APIServer {
	t.Helper()
	pidFile := filepath.Join(filepath.Dir(c.Kubeconfig), "kwok", "clusters", "roro-test", "pids", "kube-apiserver.pid")
	pid := readPid(t, pidFile)
	proc := "/proc/" + strconv.Itoa(pid)
	cmdline, err := os.ReadFile(proc + "/cmdline")
	if err != nil {
		t.Fatalf("kube-apiserver pid %d: %v", pid, err)
	}
	environ, _ := os.ReadFile(proc + "/environ")
	dir, _ := os.Readlink(proc + "/cwd")
	logPath, _ := os.Readlink(proc + "/fd/2")
	split := func(b []byte) []string { return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") }
	return &APIServer{pidFile: pidFile, args: split(cmdline), env: split(environ), dir: dir, logPath: logPath}
}

func readPid(t testing.TB, path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pid
}

// Kill stops the API server with SIGKILL and waits until it is gone.
func (a *APIServer) Kill(t testing.TB) {
	t.Helper()
	pid := readPid(t, a.pidFile)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill kube-apiserver %d: %v", pid, err)
	}
	for i := 0; i < 500; i++ {
		if err := syscall.Kill(pid, 0); err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("kube-apiserver %d did not exit", pid)
}

// Start starts the API server again as it ran before, detached, and records its pid where
// kwokctl will look for it at teardown.
func (a *APIServer) Start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(a.args[0], a.args[1:]...)
	cmd.Env, cmd.Dir = a.env, a.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if a.logPath != "" && strings.HasPrefix(a.logPath, "/") {
		if f, err := os.OpenFile(a.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			cmd.Stdout, cmd.Stderr = f, f
			defer f.Close()
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kube-apiserver: %v", err)
	}
	if err := os.WriteFile(a.pidFile, []byte(fmt.Sprintf("%d\n", cmd.Process.Pid)), 0o644); err != nil {
		t.Fatalf("record the new pid: %v", err)
	}
	go func() { _ = cmd.Wait() }() // reap it if it ever exits while the test runs
}
