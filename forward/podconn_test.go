package forward

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rorokube/roro/internal/testcluster"
)

// goneConn is an upgraded connection to a pod as it behaves after Roro sent GOAWAY to a pod
// that is going: stream requests get no answer, Close waits for streams that never end, and
// the transport never reports its end (over WebSocket it would at the next keepalive ping,
// up to 10 s later; with pings off, never).
type goneConn struct {
	release chan struct{} // closed by the test's cleanup: everything blocked returns
	closes  atomic.Int64
	creates atomic.Int64
}

func (c *goneConn) CreateStream(http.Header) (httpstream.Stream, error) {
	c.creates.Add(1)
	<-c.release
	return nil, errors.New("released")
}

func (c *goneConn) Close() error {
	c.closes.Add(1)
	<-c.release
	return nil
}

func (c *goneConn) CloseChan() <-chan bool             { return nil } // never
func (c *goneConn) SetIdleTimeout(time.Duration)       {}
func (c *goneConn) RemoveStreams(...httpstream.Stream) {}

// TestCloseFreesWaitingRequests: requests creating their streams on a pod connection when
// the forward closes it (its pod was deleted) are let go at once, not when the transport
// notices (seconds, or never): each returns errBroken with nothing moved, so the forward
// replays it to the next pod; and close itself does not wait for the far side (issue 14).
func TestCloseFreesWaitingRequests(t *testing.T) {
	conn := &goneConn{release: make(chan struct{})}
	t.Cleanup(func() { close(conn.release) })
	pc := newPodConn("gone", "uid", conn, nil, map[string]int{"7000": 7000})
	type result struct {
		moved bool
		err   error
		at    time.Time
	}
	results := make(chan result, 4)
	for range 4 {
		client, server := net.Pipe()
		t.Cleanup(func() { client.Close(); server.Close() })
		go func() {
			moved, err := pc.serve(server, 7000, counters{in: new(atomic.Int64), out: new(atomic.Int64), answered: func() {}})
			results <- result{moved, err, time.Now()}
		}()
	}
	for conn.creates.Load() < 4 { // every request is waiting for its stream
		time.Sleep(time.Millisecond)
	}
	closed := make(chan time.Time, 1)
	go func() { pc.close(); closed <- time.Now() }()
	var closedAt time.Time
	select {
	case closedAt = <-closed:
	case <-time.After(time.Second):
		t.Fatal("close waited for the far side")
	}
	if !pc.broken() {
		t.Error("the pod connection does not say it is broken after close")
	}
	for range 4 {
		select {
		case r := <-results:
			if r.moved || !errors.Is(r.err, errBroken) {
				t.Errorf("a waiting request ended with moved=%v, %v; want errBroken with nothing moved (so it is replayed)", r.moved, r.err)
			}
			if d := r.at.Sub(closedAt); d > 100*time.Millisecond {
				t.Errorf("a waiting request ended %s after close", d)
			}
		case <-time.After(time.Second): // the stream-creation bound is 1 s: sooner than that
			t.Fatal("a request waiting for its stream was not let go when its pod connection closed")
		}
	}
	// The transport is closed too, in the background.
	for deadline := time.Now().Add(time.Second); conn.closes.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if conn.closes.Load() != 1 {
		t.Errorf("transport closed %d times, want once", conn.closes.Load())
	}
}

// TestClosedPodConnectionFreesItsSocket: when the forward closes a pod connection, its
// socket and every goroutine of it are gone within a second, whatever the far side does; here
// the far side is a black hole (a gate in front of the API server that takes everything,
// answers nothing and closes nothing), the worst a network or a stuck API server can do, and
// a stream is being created and one is open when the pod goes. Before the socket was freed,
// SPDY's close waited for the unanswered stream for ever, and the socket and its goroutines
// stayed (issue 14).
func TestClosedPodConnectionFreesItsSocket(t *testing.T) {
	tc := testcluster.Get(t)
	for _, transport := range []string{TransportWebSocket, TransportSPDY} {
		t.Run(transport, func(t *testing.T) {
			ctx := testcluster.Context(t, time.Minute)
			ns := tc.Namespace(t, "fwd-free")
			testcluster.StartBinder(t, tc, ns, "app=echo", testcluster.Echo)
			objs := applyEcho(t, tc, ns)
			gate := tc.NewGate(t)
			gate.Open(t)
			gated, err := clientcmd.BuildConfigFromFlags("", gate.Kubeconfig)
			if err != nil {
				t.Fatal(err)
			}
			before := podConnGoroutines()
			// Pod connections go through the gate; the watch goes straight to the API server, so
			// the forward still learns that its pod is gone.
			f := startForwardWith(t, gated, tc.Kube, Spec{Namespace: ns, Target: "deployment/echo", Ports: []string{"0:7000"}}, Options{Transport: transport})
			st := waitState(t, f, Connected, "connected to pod")
			for range 5 {
				if err := echoOnce(addr(f), []byte("ping")); err != nil {
					t.Fatal(err)
				}
			}
			// One local connection stays open mid-conversation, so a stream is open at the close.
			held, err := net.Dial("tcp", addr(f))
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			_ = held.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := held.Write([]byte("half")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(held, make([]byte, 4)); err != nil {
				t.Fatal(err)
			}
			if n := socketsTo(t, gate.Port()); n != 1 {
				t.Fatalf("%d sockets to the gate while connected, want the pod connection's 1", n)
			}
			if n := podConnGoroutines(); n <= before {
				t.Fatalf("%d goroutines of pod connections while connected (%d before): the count misses them", n, before)
			}

			gate.Blackhole()
			// A new local connection now asks for its streams, which the far side never
			// answers: SPDY's close waits for such streams for ever.
			pending, err := net.Dial("tcp", addr(f))
			if err != nil {
				t.Fatal(err)
			}
			defer pending.Close()
			if _, err := pending.Write([]byte("lost")); err != nil {
				t.Fatal(err)
			}
			dep := objs[0].DeepCopy()
			dep.SetResourceVersion("")
			dep.SetManagedFields(nil)
			_ = setReplicas(dep, 0) // no replacement: nothing new is dialled through the black hole
			if err := tc.Apply(ctx, ns, dep); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(20 * time.Second); f.Status().Pod == st.Pod; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the forward never left pod %s; events:\n%s", st.Pod, events(f.Status()))
				}
			}
			left := time.Now()
			var sockets, goroutines int
			for time.Since(left) < time.Second {
				sockets, goroutines = socketsTo(t, gate.Port()), podConnGoroutines()
				if sockets == 0 && goroutines <= before {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			buf := make([]byte, 1<<20)
			t.Errorf("a second after the forward left pod %s: %d sockets to the gate, %d goroutines of pod connections (%d before):\n%s",
				st.Pod, sockets, goroutines, before, podConnStacks(buf))
		})
	}
}

// podConnFrames are the functions whose goroutines belong to a pod connection.
var podConnFrames = []string{"moby/spdystream", "k8s.io/streaming/pkg/httpstream/spdy", "gorilla/websocket", "tools/portforward", "forward.(*podConn)", "forward.newPodConn"}

// podConnGoroutines counts the goroutines running code of a pod connection.
func podConnGoroutines() int {
	return strings.Count(podConnStacks(make([]byte, 4<<20)), "\n\ngoroutine ")
}

// podConnStacks is the stacks of the goroutines running code of a pod connection, each
// preceded by a blank line.
func podConnStacks(buf []byte) string {
	all := string(buf[:runtime.Stack(buf, true)])
	var b strings.Builder
	for g := range strings.SplitSeq(all, "\n\n") {
		for _, f := range podConnFrames {
			if strings.Contains(g, f) {
				b.WriteString("\n\n" + g)
				break
			}
		}
	}
	return b.String()
}

// socketsTo counts this process's TCP sockets connected to port on 127.0.0.1 (from
// /proc/net/tcp, matched to the process's descriptors by inode).
func socketsTo(t *testing.T, port int) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil {
			if inode, ok := strings.CutPrefix(target, "socket:["); ok {
				inodes[strings.TrimSuffix(inode, "]")] = true
			}
		}
	}
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(":%04X", port)
	n := 0
	for _, line := range strings.Split(string(table), "\n")[1:] {
		f := strings.Fields(line)
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		if len(f) > 9 && strings.HasSuffix(f[2], want) && f[3] != "06" && inodes[f[9]] { // 06: TIME_WAIT
			n++
		}
	}
	return n
}
