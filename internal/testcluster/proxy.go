package testcluster

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/rorokube/roro/internal/testport"
)

// ReverseProxy returns an HTTP reverse proxy to c's API server, for tests that put their own
// server in front of it: it authenticates as the test's admin (a request's own Authorization
// is dropped), speaks HTTP/1.1 so SPDY and WebSocket upgrades pass, and passes responses on
// as they come (watches, logs). Its idle connections close with the test.
func (c *Cluster) ReverseProxy(t testing.TB) *httputil.ReverseProxy {
	t.Helper()
	upstream, err := url.Parse(c.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := rest.TLSConfigFor(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	// An empty TLSNextProto keeps the transport on HTTP/1.1: an upgrade cannot go over HTTP/2.
	rt := &http.Transport{TLSClientConfig: tlsCfg, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	t.Cleanup(rt.CloseIdleConnections)
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
			r.Out.Header.Del("Authorization")
		},
		Transport:     rt,
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
	}
}

// Kubeconfig writes a kubeconfig whose one context, name (also the current one), reaches
// server with a token the server may ignore, without verifying its certificate when insecure,
// and returns its path.
func Kubeconfig(t testing.TB, name, server string, insecure bool) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, InsecureSkipTLSVerify: insecure}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "x"}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: "u"}
	cfg.CurrentContext = name
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// Gate is a TCP proxy in front of the test cluster's API server that starts closed: its
// port refuses connections, as an API server that is not up yet does, until Open. Kubeconfig
// points at it, so a client sees the real API server appear.
type Gate struct {
	// Kubeconfig is a copy of the cluster's kubeconfig whose server is the gate.
	Kubeconfig string
	addr       string
	upstream   string
	mu         sync.Mutex
	ln         net.Listener
	conns      []net.Conn
	holed      atomic.Bool
}

// NewGate reserves a port for a closed gate to c's API server; it closes with the test.
func (c *Cluster) NewGate(t testing.TB) *Gate {
	t.Helper()
	u, err := url.Parse(c.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	addr := testport.Reserve(t).Addr() // reserved, not listening: the port refuses until Open
	raw, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range raw.Clusters {
		cl.Server = "https://" + addr // the serving certificate names 127.0.0.1
	}
	g := &Gate{Kubeconfig: filepath.Join(t.TempDir(), "kubeconfig"), addr: addr, upstream: u.Host}
	if err := clientcmd.WriteToFile(*raw, g.Kubeconfig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.close)
	return g
}

// Open starts accepting on the gate's port and relaying to the API server.
func (g *Gate) Open(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		t.Fatalf("open the gate on %s: %v", g.addr, err)
	}
	g.mu.Lock()
	g.ln = ln
	g.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", g.upstream)
			if err != nil {
				c.Close()
				continue
			}
			g.mu.Lock()
			g.conns = append(g.conns, c, up)
			g.mu.Unlock()
			go func() { g.relay(up, c); up.Close() }()
			go func() {
				g.relay(c, up)
				if !g.holed.Load() { // a black hole never closes a client's connection
					c.Close()
				}
			}()
		}
	}()
}

// relay copies src to dst until src ends; in a black hole it reads on and drops everything.
func (g *Gate) relay(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !g.holed.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Blackhole turns the gate into a far side that takes everything and answers nothing, on the
// connections already open and on new ones: bytes in either direction are dropped, no
// connection to a client is closed (it stays open until the client closes it, or the test
// ends), and a connection to the API server is closed only when its client's is.
func (g *Gate) Blackhole() { g.holed.Store(true) }

// Port is the gate's port on 127.0.0.1.
func (g *Gate) Port() int {
	_, port, _ := net.SplitHostPort(g.addr)
	n, _ := strconv.Atoi(port)
	return n
}

func (g *Gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		g.ln.Close()
	}
	for _, c := range g.conns {
		c.Close()
	}
}
