package forward

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rorokube/roro/internal/benchkit"
	"github.com/rorokube/roro/internal/testcluster"
)

// Benchmarks that compare roro's forward with `kubectl port-forward` to the same pod, in one
// run. They need the test cluster and its kubectl on PATH (ci/bench provides both).

// benchFixture is the echo app with the binder, and kubectl.
func benchFixture(b *testing.B) (*testcluster.Cluster, *testcluster.Binder, string, string) {
	kubectl := kubectlPath(b)
	tc, binder, ns := echoFixture(b)
	return tc, binder, ns, kubectl
}

// kubectlPath is the kubectl on PATH; the benchmark is skipped without one.
func kubectlPath(b *testing.B) string {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		b.Skip("kubectl not on PATH (ci/bench puts the test cluster's there)")
	}
	return kubectl
}

// roroForward starts a forward in this process for the benchmark and returns its local
// address once it is connected: to the pod's port 7000, or the Service's port "tcp".
func roroForward(b *testing.B, tc *testcluster.Cluster, ns, target string) (*Forward, string) {
	remote := "7000"
	if strings.HasPrefix(target, "service/") {
		remote = "tcp"
	}
	f, err := New(tc.Config, tc.Kube, Spec{Namespace: ns, Target: target, Ports: []string{"0:" + remote}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Run(context.Background()) }()
	b.Cleanup(func() { f.Stop(); <-done })
	if err := waitConnected(f, 30*time.Second); err != nil {
		b.Fatalf("%s: %v", target, err) // a benchmark of a forward that never connected measures nothing
	}
	return f, "127.0.0.1:" + strconv.Itoa(f.Ports()[0].Local)
}

var forwardingRe = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) ->`)

// kubectlForward starts `kubectl port-forward` to target and returns its local address.
func kubectlForward(b *testing.B, kubectl, kubeconfig, ns, target, local string) (*exec.Cmd, string) {
	cmd := exec.Command(kubectl, "--kubeconfig", kubeconfig, "port-forward", "-n", ns, target, local+":7000")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := forwardingRe.FindStringSubmatch(sc.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return cmd, "127.0.0.1:" + m[1]
		}
	}
	b.Fatalf("kubectl port-forward printed no address")
	return nil, ""
}

// roroProcess runs roro's forward to target as a process of its own (as kubectl's is), over
// the default transport, and returns its local address.
func roroProcess(b *testing.B, tc *testcluster.Cluster, ns, target string) string {
	addr, stop := startRoroChild(b, tc, ns, target, TransportAuto)
	b.Cleanup(stop)
	return addr
}

// startRoroChild starts roro's forward of target over transport as a process of its own
// (forwardChild) and returns its address and how to stop it.
func startRoroChild(b *testing.B, tc *testcluster.Cluster, ns, target, transport string) (string, func()) {
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "RORO_FORWARD_CHILD="+strings.Join([]string{tc.Kubeconfig, ns, target, transport}, "|"))
	return startChild(b, cmd, func(line string) (string, bool) { return strings.CutPrefix(line, "ready ") })
}

// transfer sends n random bytes through addr to the echo and reads them back.
func transfer(addr string, payload []byte) (time.Duration, error) {
	start := time.Now()
	err := echoOnce(addr, payload)
	return time.Since(start), err
}

// BenchmarkThroughput256MiB moves 256 MiB each way through roro's forward and kubectl
// port-forward (each a process of its own) and a direct loopback connection to the pod's own
// server, 5 rounds with roro and kubectl alternating which goes first, and reports each
// one's MB/s and roro/kubectl round by round as min/median/max.
func BenchmarkThroughput256MiB(b *testing.B) {
	tc, binder, ns, kubectl := benchFixture(b)
	pod := binder.Servers()[0]
	roro := roroProcess(b, tc, ns, "pod/"+pod.Pod)
	_, kc := kubectlForward(b, kubectl, tc.Kubeconfig, ns, "pod/"+pod.Pod, "0")
	payload := make([]byte, 256<<20)
	_, _ = rand.Read(payload)
	mbps := func(addr string) float64 {
		d, err := transfer(addr, payload)
		if err != nil {
			b.Fatalf("%s: %v", addr, err)
		}
		return float64(len(payload)) / d.Seconds() / 1e6
	}
	var direct, viaRoro, viaKubectl, ratio []float64
	for round := range 5 * b.N {
		direct = append(direct, mbps(pod.Addr.String()))
		var r, k float64
		if benchkit.ABBA(round) {
			r, k = mbps(roro), mbps(kc)
		} else {
			k, r = mbps(kc), mbps(roro)
		}
		viaRoro, viaKubectl, ratio = append(viaRoro, r), append(viaKubectl, k), append(ratio, r/k)
	}
	benchkit.Report(b, "roro-MB/s", viaRoro)
	benchkit.Report(b, "kubectl-MB/s", viaKubectl)
	benchkit.Report(b, "direct-MB/s", direct)
	benchkit.Report(b, "roro/kubectl", ratio)
	b.ReportMetric(float64(len(ratio)), "rounds")
}

// BenchmarkLatency1000 makes 1,000 sequential short connections (16 bytes there and back)
// through each forward (each a process of its own), in 10 rounds of 100 that alternate which
// goes first, and reports p50 and p99 over all of them.
func BenchmarkLatency1000(b *testing.B) {
	tc, binder, ns, kubectl := benchFixture(b)
	pod := binder.Servers()[0]
	roro := roroProcess(b, tc, ns, "pod/"+pod.Pod)
	_, kc := kubectlForward(b, kubectl, tc.Kubeconfig, ns, "pod/"+pod.Pod, "0")
	msg := []byte("0123456789abcdef")
	var viaRoro, viaKubectl []time.Duration
	round := func(addr string, into *[]time.Duration) {
		for range 100 {
			start := time.Now()
			if err := echoOnce(addr, msg); err != nil {
				b.Fatalf("%s: %v", addr, err)
			}
			*into = append(*into, time.Since(start))
		}
	}
	for i := range 10 * b.N {
		if benchkit.ABBA(i) {
			round(roro, &viaRoro)
			round(kc, &viaKubectl)
		} else {
			round(kc, &viaKubectl)
			round(roro, &viaRoro)
		}
	}
	pct := func(d []time.Duration) (time.Duration, time.Duration) {
		slices.Sort(d)
		return d[len(d)/2], d[len(d)*99/100]
	}
	r50, r99 := pct(viaRoro)
	k50, k99 := pct(viaKubectl)
	b.ReportMetric(float64(r50.Microseconds())/1000, "roro-p50-ms")
	b.ReportMetric(float64(r99.Microseconds())/1000, "roro-p99-ms")
	b.ReportMetric(float64(k50.Microseconds())/1000, "kubectl-p50-ms")
	b.ReportMetric(float64(k99.Microseconds())/1000, "kubectl-p99-ms")
}

// BenchmarkConcurrent200 opens 200 connections at once through each and counts errors.
func BenchmarkConcurrent200(b *testing.B) {
	tc, binder, ns, kubectl := benchFixture(b)
	pod := binder.Servers()[0]
	roro := roroProcess(b, tc, ns, "pod/"+pod.Pod)
	_, kc := kubectlForward(b, kubectl, tc.Kubeconfig, ns, "pod/"+pod.Pod, "0")
	burst := func(addr string) int {
		var wg sync.WaitGroup
		var mu sync.Mutex
		errs := 0
		for i := range 200 {
			wg.Go(func() {
				if err := echoOnce(addr, []byte(strings.Repeat(strconv.Itoa(i%10), 4096))); err != nil {
					mu.Lock()
					errs++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return errs
	}
	var re, ke int
	for range b.N {
		re += burst(roro)
		ke += burst(kc)
	}
	b.ReportMetric(float64(re), "roro-errors")
	b.ReportMetric(float64(ke), "kubectl-errors")
}

func assertBoundB(b *testing.B, port int) {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err == nil {
		ln.Close()
		b.Fatalf("roro's local port %d was free", port)
	}
}

// BenchmarkIdleForwards runs 10 forwards idle for 60 s and reports the CPU they used (as a
// share of one core) and how the process's memory grew.
func BenchmarkIdleForwards(b *testing.B) {
	tc, _, ns, _ := benchFixture(b)
	for range 10 {
		roroForward(b, tc, ns, "service/echo")
	}
	time.Sleep(2 * time.Second) // settle
	cpu0, rss0 := usage()
	start := time.Now()
	time.Sleep(60 * time.Second)
	cpu1, rss1 := usage()
	wall := time.Since(start)
	b.ReportMetric(100*(cpu1-cpu0).Seconds()/wall.Seconds(), "cpu-%core")
	b.ReportMetric(float64(rss0)/1024, "rss-start-MiB")
	b.ReportMetric(float64(rss1-rss0)/1024, "rss-growth-MiB")
}

// usage returns the process's CPU time and resident memory (KiB).
func usage() (time.Duration, int64) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	var rss int64
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				rss, _ = strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			}
		}
	}
	return cpu, rss
}

// BenchmarkDial measures one dial of a pod (the upgrade through the API server, and SPDY
// started on it) on each transport, with a full TLS handshake each time and with the session
// resumed, as a forward's dials after its first are.
func BenchmarkDial(b *testing.B) {
	tc, _, ns := echoFixture(b)
	pods, err := tc.WaitPods(testcluster.Context(b, time.Minute), ns, "app=echo", 1)
	if err != nil {
		b.Fatal(err)
	}
	for _, transport := range []string{TransportWebSocket, TransportSPDY} {
		for _, resumed := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/resumed=%v", transport, resumed), func(b *testing.B) {
				d := newDialer(tc.Config, transport)
				if !resumed {
					d.sessions = nil
				}
				for b.Loop() {
					conn, raw, err := d.dial(context.Background(), ns, pods[0].Name)
					if err != nil {
						b.Fatal(err)
					}
					_ = raw.Close()
					_ = conn.Close()
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/dial")
			})
		}
	}
}
