package forward

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
	httpstreamspdy "k8s.io/apimachinery/pkg/util/httpstream/spdy"
	pfconst "k8s.io/apimachinery/pkg/util/portforward"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/client-go/transport/websocket"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// Transports a forward may use to reach pods.
const (
	// TransportAuto tries WebSocket and falls back to SPDY, as client-go's fallback dialer does.
	TransportAuto = "auto"
	// TransportWebSocket uses the port-forward protocol tunnelled over WebSocket only.
	TransportWebSocket = "websocket"
	// TransportSPDY uses SPDY only.
	TransportSPDY = "spdy"
)

// Keepalive pings, as client-go sends them on each transport.
const (
	spdyPingPeriod      = 5 * time.Second
	websocketPingPeriod = portforward.PingPeriod
)

// dialTimeout bounds one dial and upgrade; the caller retries with backoff.
const dialTimeout = 15 * time.Second

// dialer opens upgraded connections to pods' portforward subresource on the API server of
// cfg (whose credentials it uses). In auto mode it tries WebSocket first and falls back to
// SPDY, as client-go's fallback dialer does, and once a WebSocket upgrade was refused it
// dials SPDY only: asking again at every reconnect would cost each one a round trip. Its
// dials resume TLS sessions with the API server (a third of an idle dial's time on the test
// cluster, more under load), so a replacement pod is reached sooner.
type dialer struct {
	cfg       *rest.Config
	transport string
	sessions  tls.ClientSessionCache
	spdyOnly  atomic.Bool // auto mode, after a refused WebSocket upgrade
}

// newDialer returns a dialer for cfg's API server over transport.
func newDialer(cfg *rest.Config, transport string) *dialer {
	return &dialer{cfg: cfg, transport: transport, sessions: tls.NewLRUClientSessionCache(0)}
}

// dial opens one upgraded connection to the portforward subresource of pod ns/name. It
// returns the network connection under it too, so that closing the pod connection frees the
// socket at once, whatever the far side does (see podConn.close).
//
// It is client-go's dialers (tools/portforward's tunnelling and fallback dialers,
// transport/spdy's) taken apart only far enough to keep that connection: client-go keeps it
// unexported, and its SPDY close waits on the far side without a bound.
func (d *dialer) dial(ctx context.Context, ns, name string) (httpstream.Connection, io.Closer, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	u, _, err := rest.DefaultServerUrlFor(d.cfg)
	if err != nil {
		return nil, nil, err
	}
	u = u.JoinPath("api", "v1", "namespaces", ns, "pods", name, "portforward")
	switch {
	case d.transport == TransportSPDY, d.spdyOnly.Load():
		return d.dialSPDY(ctx, u)
	case d.transport == TransportWebSocket:
		return d.dialWebSocket(ctx, u)
	}
	conn, raw, err := d.dialWebSocket(ctx, u)
	// client-go's WebSocket round tripper reports a refused upgrade as k8s.io/streaming's
	// UpgradeFailureError (as kubectl checks it), not apimachinery's.
	if err != nil && (streamhttp.IsUpgradeFailure(err) || httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)) {
		conn, raw, err = d.dialSPDY(ctx, u)
		if err == nil {
			d.spdyOnly.Store(true)
		}
	}
	return conn, raw, err
}

// dialWebSocket upgrades to WebSocket and runs SPDY inside it, as client-go's tunnelling
// dialer does.
func (d *dialer) dialWebSocket(ctx context.Context, u *url.URL) (httpstream.Connection, io.Closer, error) {
	rt, holder, err := websocket.RoundTripperFor(d.cfg)
	if err != nil {
		return nil, nil, err
	}
	if wrt, ok := holder.(*websocket.RoundTripper); ok && wrt.TLSConfig != nil {
		wrt.TLSConfig.ClientSessionCache = d.sessions
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	ws, err := websocket.Negotiate(rt, holder, req, pfconst.WebsocketsSPDYTunnelingPrefix+portforward.PortForwardProtocolV1Name)
	if err != nil {
		return nil, nil, err
	}
	raw := newRawConn(portforward.NewTunnelingConnection("client", ws), ws.NetConn())
	conn, err := newSPDYConn(raw, websocketPingPeriod)
	if err != nil {
		return nil, nil, err
	}
	return conn, raw, nil
}

// dialSPDY upgrades to SPDY/3.1, as client-go's SPDY dialer does.
func (d *dialer) dialSPDY(ctx context.Context, u *url.URL) (httpstream.Connection, io.Closer, error) {
	cfg := d.cfg
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, nil, err
	}
	if tlsConfig != nil {
		tlsConfig.ClientSessionCache = d.sessions
	}
	proxy := http.ProxyFromEnvironment
	if cfg.Proxy != nil {
		proxy = cfg.Proxy
	}
	rt, err := httpstreamspdy.NewRoundTripperWithConfig(httpstreamspdy.RoundTripperConfig{TLS: tlsConfig, Proxier: proxy})
	if err != nil {
		return nil, nil, err
	}
	up := &spdyUpgrader{dialer: rt}
	wrapped, err := rest.HTTPWrappersForConfig(cfg, up)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	// An answer that redirects is a refused upgrade, not something to follow: following it
	// would dial a second connection and lose the first.
	client := &http.Client{Transport: wrapped, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	conn, _, err := spdy.Negotiate(up, client, req, portforward.PortForwardProtocolV1Name)
	if err != nil {
		if up.raw != nil {
			_ = up.raw.Close()
		}
		return nil, nil, err
	}
	return conn, up.raw, nil
}

// spdyUpgrader is the round tripper and upgrader of one SPDY dial: apimachinery's, except
// that it keeps the connection it dialled.
type spdyUpgrader struct {
	dialer interface {
		Dial(*http.Request) (net.Conn, error)
	}
	raw *rawConn
}

// RoundTrip dials (through a proxy when one applies), sends the upgrade request and reads
// the answer.
func (s *spdyUpgrader) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header = req.Header.Clone()
	req.Header.Add(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	req.Header.Add(httpstream.HeaderUpgrade, httpstreamspdy.HeaderSpdy31)
	conn, err := s.dialer.Dial(req)
	if err != nil {
		return nil, err
	}
	// The context bounds the dial; the upgraded connection outlives it. A deadline meanwhile
	// bounds reading the answer.
	if d, ok := req.Context().Deadline(); ok {
		_ = conn.SetReadDeadline(d)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return nil, err
	}
	s.raw = newRawConn(conn, conn)
	return resp, nil
}

// NewConnection starts SPDY on the upgraded connection, or says why the server refused.
func (s *spdyUpgrader) NewConnection(resp *http.Response) (httpstream.Connection, error) {
	connection := strings.ToLower(resp.Header.Get(httpstream.HeaderConnection))
	upgrade := strings.ToLower(resp.Header.Get(httpstream.HeaderUpgrade))
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.Contains(connection, "upgrade") || !strings.Contains(upgrade, strings.ToLower(httpstreamspdy.HeaderSpdy31)) {
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if err != nil {
			return nil, errors.New("unable to upgrade connection: unable to read error from server response")
		}
		return nil, fmt.Errorf("unable to upgrade connection: %s", upgradeRefusal(body))
	}
	conn, err := newSPDYConn(s.raw, spdyPingPeriod)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// upgradeRefusal is the message in a refused upgrade's body (a metav1.Status, or text).
func upgradeRefusal(body []byte) string {
	var status struct {
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(body, &status) == nil {
		if m := strings.TrimSpace(status.Message); m != "" {
			return m
		}
		if m := strings.TrimSpace(status.Error); m != "" {
			return m
		}
	}
	if m := strings.TrimSpace(string(body)); m != "" {
		return m
	}
	return "empty server response"
}

// rawConn is the connection SPDY runs on (the TLS connection, or the WebSocket tunnel),
// with the socket under it. Close closes the socket itself, at once: no TLS close alert or
// WebSocket close frame that a stuck peer could hold up, no wait for the far side. It is
// idempotent, so the SPDY layer's own later close is a no-op.
type rawConn struct {
	net.Conn
	socket net.Conn
	tls    *tls.Conn // the TLS connection on the way down, if any
	once   sync.Once
}

// newRawConn wraps conn, whose socket is at the bottom of under (a *tls.Conn's NetConn, and
// so on down).
func newRawConn(conn, under net.Conn) *rawConn {
	c := &rawConn{Conn: conn}
	for {
		if t, ok := under.(*tls.Conn); ok && c.tls == nil {
			c.tls = t
		}
		u, ok := under.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		under = u.NetConn()
	}
	c.socket = under
	return c
}

// Close closes the socket; idempotent.
func (c *rawConn) Close() error {
	c.once.Do(func() { _ = c.socket.Close() })
	return nil
}
