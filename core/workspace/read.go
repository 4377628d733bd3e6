package workspace

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"unicode/utf8"
)

// MaxFileSize bounds every file Roro reads from a workspace (4 MiB): a workspace is untrusted
// input, and a value file linked to /dev/zero must not take the process down.
const MaxFileSize = 4 << 20

// ReadFile reads a workspace file as untrusted input: it must be a regular file (not a named
// pipe, a device or a folder), inside root once its symbolic links are resolved, at most
// MaxFileSize bytes, and valid UTF-8. Each refusal says which file and why.
func ReadFile(root, path string) ([]byte, error) {
	rel, err := filepath.Rel(root, path)
	if err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("%s is outside the workspace %s: roro reads only files inside it", path, root)
	}
	dir, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer dir.Close()
	// The root resolves links only while they stay inside it, on the open itself: nothing
	// can be swapped in between a check and the open. Opened without blocking, then checked
	// on the open file, so that a named pipe can neither hang the open nor pass as a file.
	f, err := dir.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if real, lerr := filepath.EvalSymlinks(path); lerr == nil && !inside(root, real) {
			return nil, fmt.Errorf("%s is a link to %s, outside the workspace: roro reads only files inside it; copy the file in instead", path, real)
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s): roro reads only regular files from a workspace", path, kindOf(info.Mode()))
	}
	if info.Size() > MaxFileSize {
		return nil, fmt.Errorf("%s is %d bytes, over the %d MiB a workspace file may hold", path, info.Size(), MaxFileSize>>20)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s grew past the %d MiB a workspace file may hold while roro read it", path, MaxFileSize>>20)
	}
	if !utf8.Valid(data) {
		i := firstInvalid(data)
		line, col := position(data, int64(i))
		return nil, fmt.Errorf("%s:%d:%d: invalid UTF-8 (byte 0x%02x): save the file as UTF-8", path, line, col, data[i])
	}
	return data, nil
}

// inside reports whether real (a path with no links) is inside root once root's own links
// are resolved.
func inside(root, real string) bool {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(realRoot, real)
	return err == nil && filepath.IsLocal(rel)
}

// firstInvalid is the offset of the first byte of data that is not valid UTF-8.
func firstInvalid(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(data)
}

// kindOf names a file mode that is not a regular file.
func kindOf(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeDevice != 0, m&os.ModeCharDevice != 0:
		return "a device"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a folder"
	}
	return m.Type().String()
}
