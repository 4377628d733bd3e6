package forward

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
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

// dialPod opens one upgraded connection to the portforward subresource of pod ns/name, on
// the API server of cfg (whose credentials it uses). It returns the network connection under
// it too, so that closing the pod connection frees the socket at once, whatever the far side
// does (see podConn.close).
//
// It is client-go's dialers (tools/portforward's tunnelling and fallback dialers,
// transport/spdy's) taken apart only far enough to keep that connection: client-go keeps it
// unexported, and its SPDY close waits on the far side without a bound.
func dialPod(ctx context.Context, cfg *rest.Config, ns, name, transport string) (httpstream.Connection, *rawConn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	u, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, nil, err
	}
	u = u.JoinPath("api", "v1", "namespaces", ns, "pods", name, "portforward")
	switch transport {
	case TransportSPDY:
		return dialSPDY(ctx, cfg, u)
	case TransportWebSocket:
		return dialWebSocket(ctx, cfg, u)
	}
	conn, raw, err := dialWebSocket(ctx, cfg, u)
	// client-go's WebSocket round tripper reports a refused upgrade as k8s.io/streaming's
	// UpgradeFailureError (as kubectl checks it), not apimachinery's.
	if err != nil && (streamhttp.IsUpgradeFailure(err) || httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)) {
		return dialSPDY(ctx, cfg, u)
	}
	return conn, raw, err
}

// dialWebSocket upgrades to WebSocket and runs SPDY inside it, as client-go's tunnelling
// dialer does.
func dialWebSocket(ctx context.Context, cfg *rest.Config, u *url.URL) (httpstream.Connection, *rawConn, error) {
	rt, holder, err := websocket.RoundTripperFor(cfg)
	if err != nil {
		return nil, nil, err
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
func dialSPDY(ctx context.Context, cfg *rest.Config, u *url.URL) (httpstream.Connection, *rawConn, error) {
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, nil, err
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
	once   sync.Once
}

// newRawConn wraps conn, whose socket is at the bottom of under (a *tls.Conn's NetConn, and
// so on down).
func newRawConn(conn, under net.Conn) *rawConn {
	for {
		u, ok := under.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		under = u.NetConn()
	}
	return &rawConn{Conn: conn, socket: under}
}

// Close closes the socket; idempotent.
func (c *rawConn) Close() error {
	c.once.Do(func() { _ = c.socket.Close() })
	return nil
}
