// Package gitserve is Roro's embedded SSH git server: a teammate clones, fetches and pushes a
// workspace straight from a colleague's machine with the plain git client. Only public-key
// authentication, only git's own upload-pack and receive-pack, only the workspaces served by
// name; each key has a role, read or write; refused keys are recorded for the owner to
// approve. A push to the checked-out branch is validated with the workspace loader before
// the branch moves, and updates the work tree only when it is clean.
package gitserve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rorokube/roro/core/store"
)

// Roles a key can have.
const (
	RoleRead  = "read"
	RoleWrite = "write"
)

// Key is one authorized public key.
type Key struct {
	Fingerprint string    `json:"fingerprint"` // SHA256:…
	Key         string    `json:"key"`         // the authorized_keys line: type, base64, comment
	Comment     string    `json:"comment,omitempty"`
	Role        string    `json:"role"`
	Added       time.Time `json:"added"`
}

// Refused is a key that tried to log in and was refused, for the owner to approve or not.
type Refused struct {
	Fingerprint string    `json:"fingerprint"`
	Key         string    `json:"key"`
	Comment     string    `json:"comment,omitempty"`
	Address     string    `json:"address"`
	At          time.Time `json:"at"`
	Attempts    int       `json:"attempts"`
}

// Settings are the server's keys and roles and the keys it refused, kept in a JSON file
// (mode 0600) that every change rewrites atomically. Safe for concurrent use.
type Settings struct {
	path string
	now  func() time.Time
	mu   sync.Mutex
	file settingsFile
	// stamp is the file's size and time as last read: another process (roro serve approve
	// while roro serve runs) changes the file, and the next look reads it again.
	stamp string
}

type settingsFile struct {
	Keys    []Key     `json:"keys"`
	Refused []Refused `json:"refused"`
}

// maxRefused bounds the refused-key record: a stranger hammering the port cannot grow it.
const maxRefused = 100

// OpenSettings reads the settings file at path; a missing file is empty settings.
func OpenSettings(path string, now func() time.Time) (*Settings, error) {
	s := &Settings{path: path, now: now}
	if err := s.refreshLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

// refreshLocked reads the file again when it changed since it was last read. A file that
// became unreadable or invalid keeps the last good settings and is reported.
func (s *Settings) refreshLocked() error {
	info, err := os.Stat(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the server's keys: %w", err)
	}
	stamp := fmt.Sprint(info.Size(), info.ModTime().UnixNano())
	if stamp == s.stamp {
		return nil
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("read the server's keys: %w", err)
	}
	var f settingsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	for _, k := range f.Keys {
		if k.Role != RoleRead && k.Role != RoleWrite {
			return fmt.Errorf("%s: key %s has role %q: use read or write", s.path, k.Fingerprint, k.Role)
		}
	}
	s.file, s.stamp = f, stamp
	return nil
}

// Role is the role of the key with fingerprint fp, or "" when it is not authorized.
func (s *Settings) Role(fp string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.refreshLocked() // on error, the last good settings
	for _, k := range s.file.Keys {
		if k.Fingerprint == fp {
			return k.Role
		}
	}
	return ""
}

// Keys lists the authorized keys.
func (s *Settings) Keys() []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.refreshLocked() // on error, the last good settings
	return append([]Key(nil), s.file.Keys...)
}

// RefusedKeys lists the refused keys, most recent first.
func (s *Settings) RefusedKeys() []Refused {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.refreshLocked() // on error, the last good settings
	out := append([]Refused(nil), s.file.Refused...)
	sort.Slice(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	return out
}

// Refuse records a refused key (once per key, with its latest address and time).
func (s *Settings) Refuse(key gossh.PublicKey, address string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return err
	}
	fp := gossh.FingerprintSHA256(key)
	line := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(key)))
	for i := range s.file.Refused {
		if r := &s.file.Refused[i]; r.Fingerprint == fp {
			r.Address, r.At = address, s.now()
			r.Attempts++
			return s.saveLocked()
		}
	}
	if len(s.file.Refused) >= maxRefused {
		sort.Slice(s.file.Refused, func(i, j int) bool { return s.file.Refused[i].At.After(s.file.Refused[j].At) })
		s.file.Refused = s.file.Refused[:maxRefused-1]
	}
	s.file.Refused = append(s.file.Refused, Refused{Fingerprint: fp, Key: line, Address: address, At: s.now(), Attempts: 1})
	return s.saveLocked()
}

// Approve authorizes the refused key with fingerprint fp with role.
func (s *Settings) Approve(fp, role string) (Key, error) {
	if err := checkRole(role); err != nil {
		return Key{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return Key{}, err
	}
	for i, r := range s.file.Refused {
		if r.Fingerprint != fp {
			continue
		}
		k := Key{Fingerprint: fp, Key: r.Key, Comment: r.Comment, Role: role, Added: s.now()}
		s.file.Refused = append(s.file.Refused[:i], s.file.Refused[i+1:]...)
		s.setLocked(k)
		return k, s.saveLocked()
	}
	return Key{}, fmt.Errorf("no refused key %s (roro serve keys lists them)", fp)
}

// Add authorizes one authorized_keys line with role.
func (s *Settings) Add(line, role string) (Key, error) {
	if err := checkRole(role); err != nil {
		return Key{}, err
	}
	pub, comment, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return Key{}, fmt.Errorf("not a public key line: %w", err)
	}
	k := Key{Fingerprint: gossh.FingerprintSHA256(pub), Key: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pub))), Comment: comment, Role: role, Added: s.now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return Key{}, err
	}
	s.setLocked(k)
	return k, s.saveLocked()
}

// Import authorizes every key of an authorized_keys file with role; lines that are not keys
// are reported by line number and nothing is imported.
func (s *Settings) Import(path, role string) ([]Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if _, _, _, _, err := gossh.ParseAuthorizedKey([]byte(l)); err != nil {
			return nil, fmt.Errorf("%s:%d: not a public key: %w", path, n, err)
		}
		lines = append(lines, l)
	}
	var out []Key
	for _, l := range lines {
		k, err := s.Add(l, role)
		if err != nil {
			return out, err
		}
		out = append(out, k)
	}
	return out, nil
}

// Remove removes the authorized key with fingerprint fp.
func (s *Settings) Remove(fp string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return err
	}
	for i, k := range s.file.Keys {
		if k.Fingerprint == fp {
			s.file.Keys = append(s.file.Keys[:i], s.file.Keys[i+1:]...)
			return s.saveLocked()
		}
	}
	return fmt.Errorf("no key %s", fp)
}

func (s *Settings) setLocked(k Key) {
	for i := range s.file.Keys {
		if s.file.Keys[i].Fingerprint == k.Fingerprint {
			s.file.Keys[i].Role = k.Role
			return
		}
	}
	s.file.Keys = append(s.file.Keys, k)
}

func checkRole(role string) error {
	if role != RoleRead && role != RoleWrite {
		return fmt.Errorf("role %q: use read or write", role)
	}
	return nil
}

// saveLocked writes the settings file atomically, mode 0600.
func (s *Settings) saveLocked() error {
	data, err := json.MarshalIndent(s.file, "", "  ")
	if err != nil {
		return err
	}
	if err := store.WriteFileAtomic(s.path, append(data, '\n'), 0o600); err != nil {
		return err
	}
	if info, err := os.Stat(s.path); err == nil {
		s.stamp = fmt.Sprint(info.Size(), info.ModTime().UnixNano())
	}
	return nil
}
