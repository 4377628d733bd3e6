package benchkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// EnvRoro names the variable that points at a roro binary already built (ci/bench builds
// one per run and sets it).
const EnvRoro = "RORO_BIN"

// Roro returns the path of the roro binary: $RORO_BIN when it is set, else one built now
// (go build -tags novulkan of the module's root package) into a temporary folder removed
// when tb ends. Call it before the timed part: a build takes seconds.
func Roro(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv(EnvRoro); p != "" {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			tb.Fatalf("%s=%s is not an executable file", EnvRoro, p)
		}
		return p
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		tb.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		tb.Fatal("not inside the roro module: cannot build roro")
	}
	bin := filepath.Join(tb.TempDir(), "roro")
	build := exec.Command("go", "build", "-tags", "novulkan", "-o", bin, ".")
	build.Dir = filepath.Dir(gomod)
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("go build roro: %v\n%s", err, out)
	}
	return bin
}
