package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testdisplay"
	"github.com/rorokube/roro/internal/testfs"
)

// startWindow launches the roro binary (this test binary as main) on disp with args and
// returns it with its stderr, read line by line.
func startWindow(b *testing.B, disp *testdisplay.Display, args ...string) (*exec.Cmd, *bufio.Scanner) {
	b.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(disp.Env(), "RORO_TEST_MAIN=1", "RORO_REPORT_FIRST_FRAME=1", "XDG_STATE_HOME="+b.TempDir(),
		"XDG_RUNTIME_DIR="+b.TempDir(), "DBUS_SESSION_BUS_ADDRESS=")
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, bufio.NewScanner(errPipe)
}

// waitLine reads lines until one contains want.
func waitLine(sc *bufio.Scanner, want string) (string, bool) {
	for sc.Scan() {
		if strings.Contains(sc.Text(), want) {
			return sc.Text(), true
		}
	}
	return "", false
}

// procStat reads a process's CPU time (user + system, in clock ticks) and resident memory:
// in all, anonymous (heap, stacks, buffers) and file-backed (the binary and libraries, clean
// pages shared with the page cache), in KiB.
func procStat(b *testing.B, pid int) (ticks int64, rss map[string]int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	rss = map[string]int64{}
	for _, l := range strings.Split(string(status), "\n") {
		for _, k := range []string{"VmRSS", "RssAnon", "RssFile"} {
			if v, ok := strings.CutPrefix(l, k+":"); ok {
				rss[k], _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			}
		}
	}
	return ut + st, rss
}

// BenchmarkWindow measures the desktop app as a user runs it, on a private X display
// (Mesa's software renderer: this machine has no GPU): process start to the first frame drawn
// (5 launches; target under 300 ms), then, with the demo workspace up and an app's 10 forwards
// connected through the window's engine, the CPU the idle window uses over 20 s (target under
// 1 % of a core: no redraw loop) and its resident memory (target under 100 MB).
func BenchmarkWindow(b *testing.B) {
	tc := testcluster.Get(b)
	tc.InstallDevEnvironments(b)
	disp := testdisplay.Start(b)
	dir := demoCopy(b, "bench-")
	ns := testcluster.UniqueName("roro-window-bench")
	var forwards []string
	for i := range 10 {
		forwards = append(forwards, fmt.Sprintf(`{"target": "deployment/echo", "ports": ["0:7000"], "address": "127.0.0.%d"}`, i+1))
	}
	testfs.Write(b, dir, map[string]string{
		"apps/echo/app.json": `{"group": "tools", "namespace": "` + ns + `", "manifests": ["m.yaml"], "forwards": [` + strings.Join(forwards, ",") + `]}`,
		"apps/echo/m.yaml":   "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: echo\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: echo}\n  template:\n    metadata:\n      labels: {app: echo}\n    spec:\n      containers:\n      - {name: echo, image: example.invalid/echo:1, ports: [{containerPort: 7000}]}\n",
	})
	testcluster.StartBinder(b, tc, ns, "app=echo", testcluster.Echo)
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	b.Cleanup(func() {
		cmd := exec.Command(os.Args[0], append(kc, "down")...)
		cmd.Env = append(os.Environ(), "RORO_TEST_MAIN=1")
		_ = cmd.Run()
	})
	for range b.N {
		var starts []time.Duration
		for range 5 {
			t0 := time.Now()
			cmd, sc := startWindow(b, disp, kc...)
			if _, ok := waitLine(sc, "first frame"); !ok {
				b.Fatal("no first frame")
			}
			starts = append(starts, time.Since(t0))
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		slices.Sort(starts)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(ms(starts[0]), "start-ms-min")
		b.ReportMetric(ms(starts[2]), "start-ms-med")
		b.ReportMetric(ms(starts[4]), "start-ms-max")

		// Up everything from a terminal, then the window's engine runs echo's 10 forwards.
		up := exec.Command(os.Args[0], append(kc, "up")...)
		up.Env = append(os.Environ(), "RORO_TEST_MAIN=1")
		if out, err := up.CombinedOutput(); err != nil {
			b.Fatalf("up: %v\n%s", err, out)
		}
		cmd, sc := startWindow(b, disp, kc...)
		if _, ok := waitLine(sc, "first frame"); !ok {
			b.Fatal("no first frame")
		}
		go func() { // keep reading stderr so the process never blocks on it
			for sc.Scan() {
			}
		}()
		// The forwards must run in the window's process: its Up on echo starts them.
		r := where(b, dir, "Up echo")
		disp.Click((r.Min.X+r.Max.X)/2, (r.Min.Y+r.Max.Y)/2)
		time.Sleep(10 * time.Second) // up, forwards connected, then quiet
		if n := listeners(b, cmd.Process.Pid); n < 10 {
			b.Fatalf("the window's process listens on %d TCP ports, want the 10 forwards", n)
		}
		t0, _ := procStat(b, cmd.Process.Pid)
		start := time.Now()
		time.Sleep(20 * time.Second)
		t1, rss := procStat(b, cmd.Process.Pid)
		cpu := float64(t1-t0) / 100 / time.Since(start).Seconds() * 100 // ticks are 1/100 s
		b.ReportMetric(cpu, "idle-cpu-%")
		b.ReportMetric(float64(rss["VmRSS"])/1024, "rss-MiB")
		b.ReportMetric(float64(rss["RssAnon"])/1024, "rss-anon-MiB")
		b.ReportMetric(float64(rss["RssFile"])/1024, "rss-file-MiB")
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// listeners counts the TCP ports a process listens on (its forwards), from /proc.
func listeners(b *testing.B, pid int) int {
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, fd := range fds {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil {
			if ino, ok := strings.CutPrefix(target, "socket:["); ok {
				inodes[strings.TrimSuffix(ino, "]")] = true
			}
		}
	}
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && f[3] == "0A" && inodes[f[9]] { // 0A: LISTEN
			n++
		}
	}
	return n
}
