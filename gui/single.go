package gui

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Single keeps one desktop Roro per user: the first process listens on a per-user socket,
// and a later one asks it to bring its window forward instead of starting twice.
type Single struct {
	ln    net.Listener
	raise chan struct{}
	done  chan struct{}
}

// ClaimSingle claims the socket at path. When another Roro holds it, it asks that one to
// raise its window and returns running = true. A socket file left by a Roro that died is
// taken over.
func ClaimSingle(path string) (s *Single, running bool, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := fmt.Fprintln(c, "raise"); err != nil {
			return nil, false, fmt.Errorf("ask the running roro (%s) to raise its window: %w", path, err)
		}
		reply, _ := bufio.NewReader(c).ReadString('\n')
		if strings.TrimSpace(reply) != "ok" {
			return nil, false, fmt.Errorf("the process on %s did not answer as roro does", path)
		}
		return nil, true, nil
	} else if errors.Is(err, syscall.ECONNREFUSED) {
		_ = os.Remove(path) // left by a roro that died
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, false, fmt.Errorf("listen on %s: %w", path, err)
	}
	s = &Single{ln: ln, raise: make(chan struct{}, 1), done: make(chan struct{})}
	go s.serve()
	return s, false, nil
}

func (s *Single) serve() {
	defer close(s.done)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		if strings.TrimSpace(line) == "raise" {
			select {
			case s.raise <- struct{}{}:
			default:
			}
			_, _ = fmt.Fprintln(c, "ok")
		}
		c.Close()
	}
}

// Raised receives a signal each time another launch asks for the window.
func (s *Single) Raised() <-chan struct{} { return s.raise }

// Close stops listening and removes the socket.
func (s *Single) Close() {
	_ = s.ln.Close()
	<-s.done
}

// SocketPath is the per-user socket: in $XDG_RUNTIME_DIR, else in stateDir.
func SocketPath(stateDir string) string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "roro", "desktop.sock")
	}
	return filepath.Join(stateDir, "desktop.sock")
}
