// Package testdisplay runs a private X server (Xvfb) for end-to-end tests of the window, and
// drives it as a user would: xdotool clicks, ImageMagick screenshots.
package testdisplay

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Display is a running Xvfb server.
type Display struct {
	// Name is the DISPLAY value: ":91".
	Name string
	t    testing.TB
}

// Start runs Xvfb on a free display number with one 1280×800 screen; it stops when the test
// ends. Without Xvfb the test fails when CI=true and skips otherwise.
func Start(t testing.TB) *Display {
	t.Helper()
	for _, tool := range []string{"Xvfb", "xdotool", "import"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required (CI=true): ci/deps installs it", tool)
			}
			t.Skipf("%s is not installed; ci/deps installs it", tool)
		}
	}
	for n := 90; n < 130; n++ {
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n)); err == nil {
			continue
		}
		name := ":" + strconv.Itoa(n)
		cmd := exec.Command("Xvfb", name, "-screen", "0", "1280x800x24", "-nolisten", "tcp")
		if err := cmd.Start(); err != nil {
			t.Fatalf("start Xvfb: %v", err)
		}
		d := &Display{Name: name, t: t}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
				return d
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("Xvfb %s did not come up within 10 s", name)
	}
	t.Fatal("no free X display number between :90 and :129")
	return nil
}

// Env is the environment a program on this display runs with.
func (d *Display) Env() []string {
	return append(os.Environ(), "DISPLAY="+d.Name, "WAYLAND_DISPLAY=")
}

func (d *Display) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = d.Env()
	return cmd.CombinedOutput()
}

// WaitWindow waits until a window whose title contains title is mapped.
func (d *Display) WaitWindow(title string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := d.run("xdotool", "search", "--onlyvisible", "--name", title)
		if err == nil && len(bytes.TrimSpace(out)) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no window %q within %s", title, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Click moves the pointer to (x, y) on the screen and clicks the primary button.
func (d *Display) Click(x, y int) {
	d.t.Helper()
	if out, err := d.run("xdotool", "mousemove", strconv.Itoa(x), strconv.Itoa(y), "click", "1"); err != nil {
		d.t.Fatalf("xdotool click %d,%d: %v\n%s", x, y, err, out)
	}
}

// Screenshot captures the whole screen.
func (d *Display) Screenshot() image.Image {
	d.t.Helper()
	cmd := exec.Command("import", "-window", "root", "png:-")
	cmd.Env = d.Env()
	out, err := cmd.Output()
	if err != nil {
		d.t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		d.t.Fatalf("screenshot: %v", err)
	}
	return img
}

// Save writes img as a PNG file.
func Save(t testing.TB, img image.Image, path string) {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
