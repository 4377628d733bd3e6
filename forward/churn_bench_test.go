package forward

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testport"
)

// The pod-churn benchmark runs each forward as its own process, roro's as kubectl's: this
// test binary is roro's forward process when RORO_FORWARD_CHILD is set (the forward package
// alone, as `roro forward` runs it, without the engine's set-up).
func TestMain(m *testing.M) {
	if spec := os.Getenv("RORO_FORWARD_CHILD"); spec != "" {
		os.Exit(forwardChild(spec))
	}
	os.Exit(m.Run())
}

// forwardChild runs one forward, "kubeconfig|namespace|target|transport", prints
// "ready ADDRESS" once it is connected, and runs until its standard input closes.
func forwardChild(spec string) int {
	f := strings.Split(spec, "|")
	if len(f) != 4 {
		fmt.Fprintln(os.Stderr, "RORO_FORWARD_CHILD: want kubeconfig|namespace|target|transport")
		return 2
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", f[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fw, err := New(cfg, kube, Spec{Namespace: f[1], Target: f[2], Ports: []string{"0:7000"}}, Options{Transport: f[3]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- fw.Run(context.Background()) }()
	if err := waitConnected(fw, 30*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ready 127.0.0.1:%d\n", fw.Ports()[0].Local)
	_, _ = io.Copy(io.Discard, os.Stdin)
	st := fw.Status()
	fmt.Fprintf(os.Stderr, "roro forward (%s): %d connections, %d failed, %d cut, %d replayed, %d retried in a start grace\n", f[3], st.Total, st.Failures, st.Cut, st.Replayed, st.Retried)
	// The longest time without a pod connection, with the events around it: a stall shows
	// whether it was waiting for a pod (the watch) or for a connection to one (the dial).
	var worst time.Duration
	var from, to Event
	var since *Event
	for i, e := range st.Events {
		switch {
		case e.State == Connected && since != nil:
			if d := e.At.Sub(since.At); d > worst {
				worst, from, to = d, *since, e
			}
			since = nil
		case e.State != Connected && since == nil:
			since = &st.Events[i]
		}
	}
	if worst > 0 {
		fmt.Fprintf(os.Stderr, "  longest without a pod connection: %s, from %s to %s\n", worst.Round(time.Millisecond), from, to)
	}
	for _, e := range st.Events { // what went wrong, for a run with failures or a stall
		routine := strings.Contains(e.Message, " was deleted") || strings.HasPrefix(e.Message, "no pod of ")
		if e.State == Failed || e.State == Reconnecting && !routine {
			fmt.Fprintln(os.Stderr, "  ", e.String())
		}
	}
	fw.Stop()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// waitConnected waits for the forward's ports and its first pod, or says why not.
func waitConnected(f *Forward, within time.Duration) error {
	deadline := time.After(within)
	select {
	case <-f.Ready():
	case <-deadline:
		return fmt.Errorf("the forward bound no port within %s", within)
	}
	for f.Status().State != Connected {
		select {
		case <-deadline:
			st := f.Status()
			return fmt.Errorf("the forward never connected within %s: %s %s", within, st.State, st.Reason)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// churnSide is one forward under churn: how it starts, and what its requests saw.
type churnSide struct {
	name  string
	start func(b *testing.B) (addr string, stop func())
	// holdsPort: the local port stays bound through the churn (roro's promise; checked after
	// every replacement).
	holdsPort bool
}

// churnResult is what the load saw through one side in one run.
type churnResult struct {
	latencies []time.Duration // every request, failed or not, until it ended
	failed    int
	outage    time.Duration  // the longest time in which no request through it succeeded
	why       map[string]int // failed requests by what the client saw
	failures  []string       // when each failed request started, how long it took, what it saw
	// replacement is the longest time from a deletion to the next pod Ready and serving:
	// while it lasts there is no pod to send a request to, whatever forwards it.
	replacement time.Duration
	// afterReady is the longest a request through a replacement lasted past the moment the
	// next pod was Ready and serving: what the forward itself adds to the wait.
	afterReady time.Duration
	// slowest is the slowest request, with the replacement it went through.
	slowest string
}

// span is a request's or a replacement's start and end.
type span struct{ start, end time.Time }

// Client and churn parameters: four request loops with a 2 s client timeout (a failed
// request is retried after 10 ms, as a client library would), 20 pod replacements 2 s apart.
const (
	churnLoops        = 4
	churnTimeout      = 2 * time.Second
	churnRetryPause   = 10 * time.Millisecond
	churnReplacements = 20
	churnEvery        = 2 * time.Second
	churnRuns         = 3
)

// churnLoad is what the pod's server does with the requests: the shape of the load.
type churnLoad struct {
	name    string // prefixes its metrics (none for the first, whose names the README has used)
	handler testcluster.Handler
}

// churnLoads: the pod echoes until the client's close reaches it, which on this sandbox it
// never does (kwok does not pass a half-close on), so every finished request's stream stays
// open until its pod goes and each deletion ends some two thousand at once; or the pod
// answers each request and closes, as an HTTP server answering with "Connection: close"
// does (and as the first becomes where a half-close reaches the pod).
var churnLoads = []churnLoad{
	{"", testcluster.Echo},
	{"answer-", func(_ string, c net.Conn) {
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		_, _ = c.Write(buf[:n])
		c.Close()
	}},
}

// BenchmarkPodChurn deletes the one pod of a Deployment 20 times, every 2 s, under four
// loops of short requests (a new connection each, a 2 s client timeout), through roro's
// forward over WebSocket, roro's over SPDY (each a process of its own) and `kubectl
// port-forward` restarted in a loop as soon as it exits (it ends at the first deletion),
// three runs each, sides alternated, under each of churnLoads. It reports, per load and side,
// the latency of every request (p50, p99, max), the failed requests, the longest time with no
// request succeeding, the longest replacement, and the longest a request lasted past its
// replacement (what the forward adds). RORO_CHURN_SIDES and RORO_CHURN_LOADS ("echo",
// "answer") pick some.
func BenchmarkPodChurn(b *testing.B) {
	kubectl := kubectlPath(b)
	for _, load := range churnLoads {
		if only := os.Getenv("RORO_CHURN_LOADS"); only != "" && !slices.Contains(strings.Split(only, ","), cmp.Or(strings.TrimSuffix(load.name, "-"), "echo")) {
			continue
		}
		tc, binder, ns := echoFixtureWith(b, load.handler)
		churnLoadRuns(b, load.name, tc, binder, ns, kubectl)
	}
}

// churnLoadRuns runs BenchmarkPodChurn's runs under one load and reports its metrics, each
// name prefixed.
func churnLoadRuns(b *testing.B, prefix string, tc *testcluster.Cluster, binder *testcluster.Binder, ns, kubectl string) {
	roro := func(transport string) func(b *testing.B) (string, func()) {
		return func(b *testing.B) (string, func()) { return startRoroChild(b, tc, ns, "deployment/echo", transport) }
	}
	kube := func(b *testing.B) (string, func()) {
		port := testport.Reserve(b).Number // kubectl's fixed local port, kept through its restarts
		loop := exec.Command("bash", "-c", fmt.Sprintf("while true; do %q --kubeconfig %q port-forward -n %q deployment/echo %d:7000 >/dev/null 2>&1; done",
			kubectl, tc.Kubeconfig, ns, port))
		loop.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := loop.Start(); err != nil {
			b.Fatal(err)
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		stop := func() { _ = syscall.Kill(-loop.Process.Pid, syscall.SIGKILL); _ = loop.Wait() }
		if err := waitServing(addr, 30*time.Second); err != nil {
			stop()
			b.Fatalf("kubectl port-forward: %v", err)
		}
		return addr, stop
	}
	sides := []churnSide{{"roro-websocket", roro(TransportWebSocket), true}, {"roro-spdy", roro(TransportSPDY), true}, {"kubectl", kube, false}}
	if only := os.Getenv("RORO_CHURN_SIDES"); only != "" { // e.g. roro-spdy, to chase one side's stall
		sides = slices.DeleteFunc(sides, func(s churnSide) bool { return !slices.Contains(strings.Split(only, ","), s.name) })
	}
	results := map[string][]churnResult{}
	for run := range churnRuns * b.N {
		order := slices.Clone(sides)
		if run%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			addr, stop := s.start(b)
			res := churn(b, tc, binder, ns, addr, s.holdsPort)
			stop()
			results[s.name] = append(results[s.name], res)
			if res.failed > 0 {
				b.Logf("%s%s run %d: %d failed requests: %v", prefix, s.name, run+1, res.failed, res.why)
				if s.holdsPort { // roro's, to set beside its events (kubectl's are hundreds)
					b.Logf("  %s", strings.Join(res.failures, "\n  "))
				}
			}
		}
	}
	for _, s := range sides {
		var all []time.Duration
		failed := 0
		var outage, replacement, afterReady time.Duration
		for i, r := range results[s.name] {
			all = append(all, r.latencies...)
			failed += r.failed
			outage = max(outage, r.outage)
			replacement = max(replacement, r.replacement)
			afterReady = max(afterReady, r.afterReady)
			b.Logf("%s%s run %d: slowest request %s", prefix, s.name, i+1, r.slowest)
		}
		slices.Sort(all)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		name := prefix + s.name
		b.ReportMetric(float64(len(all))/float64(len(results[s.name])), name+"-requests/run")
		b.ReportMetric(float64(failed)/float64(len(results[s.name])), name+"-failed/run")
		b.ReportMetric(ms(all[len(all)/2]), name+"-p50-ms")
		b.ReportMetric(ms(all[len(all)*99/100]), name+"-p99-ms")
		b.ReportMetric(ms(all[len(all)-1]), name+"-max-ms")
		b.ReportMetric(ms(outage), name+"-outage-ms")
		b.ReportMetric(ms(replacement), name+"-replacement-max-ms")
		b.ReportMetric(ms(afterReady), name+"-after-ready-max-ms")
	}
}

// churn runs the load through addr while it replaces the pod churnReplacements times.
func churn(b *testing.B, tc *testcluster.Cluster, binder *testcluster.Binder, ns, addr string, holdsPort bool) churnResult {
	ctx := context.Background()
	var mu sync.Mutex
	var res churnResult
	var requests, replacements []span
	lastOK := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range churnLoops {
		msg := []byte(fmt.Sprintf("ping %d", i))
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				err := request(addr, msg)
				end := time.Now()
				mu.Lock()
				res.latencies = append(res.latencies, end.Sub(start))
				requests = append(requests, span{start, end})
				if err != nil {
					res.failures = append(res.failures, fmt.Sprintf("%s +%s %s", start.Format("15:04:05.000"), end.Sub(start).Round(time.Millisecond), failureKind(err)))
					res.failed++
					if res.why == nil {
						res.why = map[string]int{}
					}
					res.why[failureKind(err)]++
				} else {
					res.outage = max(res.outage, start.Sub(lastOK))
					lastOK = end
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(churnRetryPause)
				}
			}
		})
	}
	zero := int64(0)
	next := time.Now().Add(churnEvery) // deletions every churnEvery, however long a replacement takes
	for range churnReplacements {
		time.Sleep(time.Until(next))
		next = next.Add(churnEvery)
		deleting := time.Now()
		list, err := tc.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=echo"})
		if err != nil {
			b.Fatal(err)
		}
		deleted := map[string]bool{}
		for _, p := range list.Items {
			deleted[p.Name] = true
			if p.DeletionTimestamp == nil {
				if err := tc.Kube.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
					b.Fatal(err)
				}
			}
		}
		gap := replaced(b, tc, binder, ns, deleted)
		replacements = append(replacements, span{deleting, time.Now()})
		mu.Lock()
		res.replacement = max(res.replacement, gap)
		mu.Unlock()
		if holdsPort {
			_, port, _ := net.SplitHostPort(addr)
			n, _ := strconv.Atoi(port)
			assertBoundB(b, n)
		}
	}
	time.Sleep(churnEvery) // the last replacement under load too
	close(stop)
	wg.Wait()
	res.afterReady, res.slowest = throughReplacements(requests, replacements)
	return res
}

// throughReplacements returns the longest a request that overlapped a replacement lasted
// past that replacement's end, and the slowest request, with the replacement it overlapped.
func throughReplacements(requests, replacements []span) (time.Duration, string) {
	var after time.Duration
	var slowest span
	for _, r := range requests {
		if r.end.Sub(r.start) > slowest.end.Sub(slowest.start) {
			slowest = r
		}
		for _, p := range replacements {
			if r.start.Before(p.end) && r.end.After(p.start) {
				after = max(after, r.end.Sub(p.end))
			}
		}
	}
	t := func(at time.Time) string { return at.Format("15:04:05.000") }
	desc := fmt.Sprintf("%s from %s", slowest.end.Sub(slowest.start).Round(time.Millisecond), t(slowest.start))
	for _, p := range replacements {
		if slowest.start.Before(p.end) && slowest.end.After(p.start) {
			desc += fmt.Sprintf(", through the replacement from %s (deletion) to %s (next pod Ready and serving): ended %s after it",
				t(p.start), t(p.end), slowest.end.Sub(p.end).Round(time.Millisecond))
		}
	}
	return after, desc
}

// replaced waits for a pod not in gone to be Ready with its server bound, and returns how
// long that took.
func replaced(b *testing.B, tc *testcluster.Cluster, binder *testcluster.Binder, ns string, gone map[string]bool) time.Duration {
	start := time.Now()
	for deadline := start.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, s := range binder.Servers() {
			if s.Closed() || gone[s.Pod] {
				continue
			}
			p, err := tc.Kube.CoreV1().Pods(ns).Get(context.Background(), s.Pod, metav1.GetOptions{})
			if err != nil {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					return time.Since(start)
				}
			}
		}
	}
	b.Fatal("no replacement pod was Ready and bound within 30 s")
	return 0
}

// failureKind names what a client saw of a failed request.
func failureKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	}
	return err.Error()
}

// request is one short request: a new connection, msg there and back, within the client
// timeout.
func request(addr string, msg []byte) error {
	deadline := time.Now().Add(churnTimeout)
	c, err := net.DialTimeout("tcp", addr, churnTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != string(msg) {
		return errors.New("wrong echo")
	}
	return nil
}

// startChild starts cmd with a pipe on its stdin (closing it ends the child) and returns the
// address its first matching stdout line gives.
func startChild(b *testing.B, cmd *exec.Cmd, match func(string) (string, bool)) (string, func()) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop := func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if addr, ok := match(sc.Text()); ok {
				lines <- addr
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		close(lines)
	}()
	select {
	case addr, ok := <-lines:
		if ok {
			return addr, stop
		}
	case <-time.After(60 * time.Second):
	}
	stop()
	b.Fatalf("%s never said it was ready", cmd.Path)
	return "", nil
}

// waitServing waits until a request through addr succeeds.
func waitServing(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := request(addr, []byte("up?"))
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no request through %s succeeded within %s: %w", addr, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
