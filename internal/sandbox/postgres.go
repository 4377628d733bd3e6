package sandbox

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"time"
)

// PostgreSQL protocol version 3.0 and the request codes sent in place of a version.
const (
	pgProtocol3   = 196608
	pgSSLRequest  = 80877103
	pgGSSRequest  = 80877104
	pgMaxStartup  = 10000 // the server's own limit on a startup packet
	pgMaxMessage  = 1 << 20
	pgIdleTimeout = 5 * time.Minute
)

// answerPostgres speaks just enough of PostgreSQL's protocol (v3) for a client to connect as
// it would to the demo's postgres image (pg_isready says "accepting connections", psql gets a
// prompt): it declines TLS, accepts the startup without a password (the demo's database
// trusts in-cluster connections), and answers every query with an error saying that the
// sandbox runs no database.
func answerPostgres(c net.Conn, r *bufio.Reader) {
	defer c.Close()
	for {
		_ = c.SetDeadline(time.Now().Add(pgIdleTimeout))
		var head [8]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return
		}
		n, code := binary.BigEndian.Uint32(head[:4]), binary.BigEndian.Uint32(head[4:])
		if n < 8 || n > pgMaxStartup {
			return
		}
		if _, err := r.Discard(int(n) - 8); err != nil {
			return
		}
		switch code {
		case pgSSLRequest, pgGSSRequest:
			if _, err := c.Write([]byte{'N'}); err != nil {
				return
			}
			continue // the startup packet follows, in the clear
		case pgProtocol3:
		default: // a cancel request, or a protocol this answers nothing to
			return
		}
		break
	}
	var out []byte
	out = pgMessage(out, 'R', []byte{0, 0, 0, 0}) // AuthenticationOk
	out = pgMessage(out, 'S', []byte("server_version\x0017.2 (the Roro sandbox: no database runs here)\x00"))
	out = pgMessage(out, 'S', []byte("client_encoding\x00UTF8\x00"))
	out = pgMessage(out, 'Z', []byte{'I'}) // ReadyForQuery, idle
	if _, err := c.Write(out); err != nil {
		return
	}
	for {
		_ = c.SetDeadline(time.Now().Add(pgIdleTimeout))
		var head [5]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(head[1:])
		if n < 4 || n > pgMaxMessage {
			return
		}
		if _, err := r.Discard(int(n) - 4); err != nil {
			return
		}
		switch head[0] {
		case 'X': // Terminate
			return
		case 'Q', 'S': // a simple query, or the Sync that ends an extended one
			var e []byte
			e = append(e, 'S')
			e = append(e, "ERROR\x00"...)
			e = append(e, 'C')
			e = append(e, "0A000\x00"...) // feature_not_supported
			e = append(e, 'M')
			e = append(e, "the Roro sandbox runs no database: kwok starts no container, so this only answers for the pod\x00"...)
			e = append(e, 0)
			out := pgMessage(nil, 'E', e)
			out = pgMessage(out, 'Z', []byte{'I'})
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}
}

// pgMessage appends one backend message: its type, its length, its body.
func pgMessage(out []byte, kind byte, body []byte) []byte {
	out = append(out, kind)
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)+4))
	return append(out, body...)
}
