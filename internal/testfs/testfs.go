// Package testfs lays out folders of files for tests: workspaces, apps, charts.
package testfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// SymlinkPrefix, at the start of a file's content, makes Write create a symbolic link to the
// rest of the content instead of a file.
const SymlinkPrefix = "symlink:"

// Write creates files (slash-separated path → content) under dir, with their folders.
func Write(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, SymlinkPrefix); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Layout writes files under a new temporary folder and returns the folder.
func Layout(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	Write(t, dir, files)
	return dir
}
