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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rorokube/roro/internal/testcluster"
)

// Benchmarks that compare roro's forward with `kubectl port-forward` to the same pod, in one
// run. They need the test cluster and its kubectl on PATH (ci/bench provides both).

// benchFixture is the echo app with the binder, and kubectl.
func benchFixture(b *testing.B) (*testcluster.Cluster, *testcluster.Binder, string, string) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		b.Skip("kubectl not on PATH (ci/bench puts the test cluster's there)")
	}
	tc, binder, ns := echoFixture(b)
	return tc, binder, ns, kubectl
}

// roroForward starts a forward for the benchmark and returns its local address.
func roroForward(b *testing.B, tc *testcluster.Cluster, ns, target string) (*Forward, string) {
	f, err := New(tc.Config, tc.Kube, Spec{Namespace: ns, Target: target, Ports: []string{"0:7000"}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Run(context.Background()) }()
	b.Cleanup(func() { f.Stop(); <-done })
	<-f.Ready()
	deadline := time.Now().Add(30 * time.Second)
	for f.Status().State != Connected && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
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

// transfer sends n random bytes through addr to the echo and reads them back.
func transfer(addr string, payload []byte) (time.Duration, error) {
	start := time.Now()
	err := echoOnce(addr, payload)
	return time.Since(start), err
}

// BenchmarkThroughput256MiB moves 256 MiB each way through roro, kubectl port-forward and a
// direct loopback connection to the pod's own server, and reports MB/s and ratios.
func BenchmarkThroughput256MiB(b *testing.B) {
	tc, binder, ns, kubectl := benchFixture(b)
	pod := binder.Servers()[0]
	_, roro := roroForward(b, tc, ns, "pod/"+pod.Pod)
	_, kc := kubectlForward(b, kubectl, tc.Kubeconfig, ns, "pod/"+pod.Pod, "0")
	payload := make([]byte, 256<<20)
	_, _ = rand.Read(payload)
	var direct, viaRoro, viaKubectl time.Duration
	for range b.N {
		for _, run := range []struct {
			addr string
			into *time.Duration
		}{{pod.Addr.String(), &direct}, {roro, &viaRoro}, {kc, &viaKubectl}} {
			d, err := transfer(run.addr, payload)
			if err != nil {
				b.Fatalf("%s: %v", run.addr, err)
			}
			*run.into += d
		}
	}
	mbps := func(d time.Duration) float64 { return float64(len(payload)) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(viaRoro), "roro-MB/s")
	b.ReportMetric(mbps(viaKubectl), "kubectl-MB/s")
	b.ReportMetric(mbps(direct), "direct-MB/s")
	b.ReportMetric(mbps(viaRoro)/mbps(viaKubectl), "roro/kubectl")
	b.ReportMetric(mbps(viaRoro)/mbps(direct), "roro/direct")
	b.ReportMetric(mbps(viaKubectl)/mbps(direct), "kubectl/direct")
}

// BenchmarkLatency1000 makes 1,000 sequential short connections (16 bytes there and back)
// through each and reports p50 and p99.
func BenchmarkLatency1000(b *testing.B) {
	tc, binder, ns, kubectl := benchFixture(b)
	pod := binder.Servers()[0]
	_, roro := roroForward(b, tc, ns, "pod/"+pod.Pod)
	_, kc := kubectlForward(b, kubectl, tc.Kubeconfig, ns, "pod/"+pod.Pod, "0")
	msg := []byte("0123456789abcdef")
	measure := func(addr string) (p50, p99 time.Duration) {
		var d []time.Duration
		for range 1000 * b.N {
			start := time.Now()
			if err := echoOnce(addr, msg); err != nil {
				b.Fatalf("%s: %v", addr, err)
			}
			d = append(d, time.Since(start))
		}
		slices.Sort(d)
		return d[len(d)/2], d[len(d)*99/100]
	}
	r50, r99 := measure(roro)
	k50, k99 := measure(kc)
	b.ReportMetric(float64(r50.Microseconds())/1000, "roro-p50-ms")
	b.ReportMetric(float64(r99.Microseconds())/1000, "roro-p99-ms")
	b.ReportMetric(float64(k50.Microseconds())/1000, "kubectl-p50-ms")
	b.ReportMetric(float64(k99.Microseconds())/1000, "kubectl-p99-ms")
}

// BenchmarkConcurrent200 opens 200 connections at once through each and counts errors.
func BenchmarkConcurrent200(b *testing.B) {
	tc, binder, ns, kubectl := benchFixture(b)
	pod := binder.Servers()[0]
	_, roro := roroForward(b, tc, ns, "pod/"+pod.Pod)
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

// BenchmarkPodReplacement20 replaces the pod 20 times under a steady load of short requests
// (a new connection each) and reports, per replacement, the time from the new pod's Ready to
// the first request that succeeds through it, and the failed requests. kubectl port-forward
// exits at the first replacement, so it runs restarted in a loop on a fixed port, as a user
// would script it. roro's local port is checked to stay bound throughout.
func BenchmarkPodReplacement20(b *testing.B) {
	tc, _, ns, kubectl := benchFixture(b)
	f, roro := roroForward(b, tc, ns, "deployment/echo")
	// kubectl in a restart loop on a fixed free port.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	kport := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	loop := exec.Command("bash", "-c", fmt.Sprintf("while true; do %s --kubeconfig %s port-forward -n %s deployment/echo %d:7000 >/dev/null 2>&1; sleep 0.05; done", kubectl, tc.Kubeconfig, ns, kport))
	loop.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := loop.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = syscall.Kill(-loop.Process.Pid, syscall.SIGKILL); _ = loop.Wait() })
	kc := "127.0.0.1:" + strconv.Itoa(kport)
	waitUp := func(addr string) {
		deadline := time.Now().Add(30 * time.Second)
		for echoOnce(addr, []byte("up?")) != nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitUp(roro)
	waitUp(kc)
	ctx := context.Background()
	type side struct {
		name     string
		addr     string
		recovery []time.Duration
		failed   int
	}
	sides := []*side{{name: "roro", addr: roro}, {name: "kubectl", addr: kc}}
	for _, s := range sides {
		for range 20 * b.N {
			pods, err := tc.WaitPods(ctx, ns, "app=echo", 1)
			if err != nil {
				b.Fatal(err)
			}
			old := pods[0].Name
			// Steady load in the background: one short request after another.
			stop := make(chan struct{})
			var mu sync.Mutex
			var okAt []time.Time
			failed := 0
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case <-stop:
						return
					default:
					}
					reqStart := time.Now()
					err := echoOnce(s.addr, []byte("ping"))
					if took := time.Since(reqStart); took > time.Second && os.Getenv("RORO_BENCH_DEBUG") != "" {
						fmt.Fprintf(os.Stderr, "%s request took %s (started %s, err %v)\n", s.name, took, reqStart.Format("15:04:05.000"), err)
					}
					if err != nil {
						mu.Lock()
						failed++
						if s.name == "roro" && os.Getenv("RORO_BENCH_DEBUG") != "" {
							fmt.Fprintf(os.Stderr, "roro request failed: %v; status %s %s\n", err, f.Status().State, f.Status().Reason)
						}
						mu.Unlock()
						time.Sleep(5 * time.Millisecond)
						continue
					}
					mu.Lock()
					okAt = append(okAt, time.Now())
					mu.Unlock()
				}
			}()
			zero := int64(0)
			if err := tc.Kube.CoreV1().Pods(ns).Delete(ctx, old, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
				b.Fatal(err)
			}
			var readyAt time.Time
			err = testcluster.Poll(ctx, 5*time.Millisecond, func() (bool, error) {
				list, err := tc.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=echo"})
				if err != nil {
					return false, nil
				}
				for i := range list.Items {
					p := &list.Items[i]
					if p.Name != old && usable(p) {
						readyAt = time.Now()
						return true, nil
					}
				}
				return false, nil
			})
			if err != nil {
				b.Fatal(err)
			}
			// Wait for a success after Ready, then stop the load.
			var first time.Time
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
				mu.Lock()
				for _, at := range okAt {
					if at.After(readyAt) {
						first = at
						break
					}
				}
				mu.Unlock()
				if !first.IsZero() {
					break
				}
			}
			close(stop)
			<-done
			if first.IsZero() {
				b.Fatalf("%s: no request succeeded within 30 s of the new pod's Ready", s.name)
			}
			s.recovery = append(s.recovery, first.Sub(readyAt))
			if os.Getenv("RORO_BENCH_DEBUG") != "" && s.name == "roro" && first.Sub(readyAt) > time.Second {
				st := f.Status()
				fmt.Fprintf(os.Stderr, "slow recovery %s after Ready at %s, first success %s; events:\n", first.Sub(readyAt), readyAt.Format("15:04:05.000"), first.Format("15:04:05.000"))
				for _, e := range st.Events {
					if e.At.After(readyAt.Add(-2 * time.Second)) {
						fmt.Fprintf(os.Stderr, "  %s\n", e)
					}
				}
			}
			s.failed += failed
			if s.name == "roro" {
				assertBoundB(b, f.Ports()[0].Local)
			}
		}
	}
	for _, s := range sides {
		slices.Sort(s.recovery)
		b.ReportMetric(float64(s.recovery[len(s.recovery)/2].Microseconds())/1000, s.name+"-p50-ms")
		b.ReportMetric(float64(s.recovery[len(s.recovery)-1].Microseconds())/1000, s.name+"-max-ms")
		b.ReportMetric(float64(s.failed)/float64(len(s.recovery)), s.name+"-failed/replacement")
	}
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
