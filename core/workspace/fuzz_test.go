package workspace

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var posRe = regexp.MustCompile(`^f\.json:(\d+):(\d+): `)

// FuzzDecode feeds arbitrary bytes to the strict decoder of both file types. It must never
// panic, and every error must point inside the input: a line and column that exist.
func FuzzDecode(f *testing.F) {
	for _, p := range []string{"../../fixtures/demo/roro.json", "../../fixtures/demo/apps/api/app.json", "../../fixtures/demo/apps/db/app.json"} {
		if data, err := os.ReadFile(filepath.FromSlash(p)); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"name": "w", "membres": []}`))
	f.Add([]byte("{\n\"manifests\": \"x\"\n}"))
	f.Add([]byte(`{"instances": {"a": {"sufix": 1}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{&File{}, &AppFile{}} {
			err := decode("f.json", data, v)
			if err == nil {
				continue
			}
			m := posRe.FindStringSubmatch(err.Error())
			if m == nil {
				t.Fatalf("error without a position: %v", err)
			}
			line, _ := strconv.Atoi(m[1])
			col, _ := strconv.Atoi(m[2])
			lines := bytes.Split(data, []byte("\n"))
			if line < 1 || line > len(lines) {
				t.Fatalf("line %d outside the %d lines of the input: %v", line, len(lines), err)
			}
			if col < 1 || col > len(lines[line-1])+1 {
				t.Fatalf("column %d outside line %d (%d bytes): %v", col, line, len(lines[line-1]), err)
			}
			if strings.Contains(err.Error(), "unknown field") && !strings.Contains(err.Error(), "unknown field \"") {
				t.Fatalf("unknown field without its name: %v", err)
			}
		}
	})
}
