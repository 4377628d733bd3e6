package sandbox

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"time"
)

// tlsHandshake is the first byte of a TLS connection: a handshake record.
const tlsHandshake = 22

// sniffListener hands HTTP connections, plain or in TLS, on to an HTTP server and answers
// those that open with a PostgreSQL startup packet itself (answerPostgres), so a pod's port
// answers in the protocol the client speaks, as the demo's images do: HTTP and HTTPS for web
// and api (the echo image serves both, HTTPS with a self-signed certificate), PostgreSQL's
// for db. An HTTP request opens with a method's letters; a TLS connection with a handshake
// record (22); a PostgreSQL startup packet with its length, whose first byte is 0 (every
// startup packet is shorter than 16 MiB). Each connection is sniffed on its own goroutine, so
// one that sends nothing holds up no other.
type sniffListener struct {
	net.Listener
	tls   *tls.Config
	conns chan net.Conn
	done  chan struct{} // closed when the listener is
	err   error         // why, once done is closed
}

// sniffWait bounds how long a new connection may stay silent before it is closed.
const sniffWait = 30 * time.Second

// newSniffListener sniffs ln's connections; TLS ones are served with cfg.
func newSniffListener(ln net.Listener, cfg *tls.Config) *sniffListener {
	l := &sniffListener{Listener: ln, tls: cfg, conns: make(chan net.Conn), done: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				l.err = err
				close(l.done)
				return
			}
			go l.sniff(c)
		}
	}()
	return l
}

func (l *sniffListener) sniff(c net.Conn) {
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(sniffWait))
	first, err := br.Peek(1)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	var next net.Conn = &peekedConn{Conn: c, r: br}
	switch first[0] {
	case 0:
		answerPostgres(c, br)
		return
	case tlsHandshake:
		next = tls.Server(next, l.tls) // net/http completes the handshake
	}
	select {
	case l.conns <- next:
	case <-l.done:
		c.Close()
	}
}

// Accept returns the next HTTP connection; PostgreSQL ones are answered on the side.
func (l *sniffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// peekedConn is a connection whose first bytes were read into r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// selfSignedTLS is a server configuration with a new self-signed certificate for localhost
// and 127.0.0.1, as the echo image makes for its HTTPS port: a client must skip verification
// (curl -k), there as here.
func selfSignedTLS(now time.Time) (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "Roro sandbox pod"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, nil
}
