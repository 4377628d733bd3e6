// Package testdisplay runs a private X server (Xvfb) for end-to-end tests of the window, and
// drives it as a user would: xdotool clicks, ImageMagick screenshots.
package testdisplay

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Display is a running Xvfb server.
type Display struct {
	// Name is the DISPLAY value: ":91".
	Name string
	t    testing.TB
}

// Start runs Xvfb on a display number it picks itself, with one 1280×800 screen; it stops
// when the test ends. Without Xvfb the test fails when CI=true and skips otherwise.
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
	// Xvfb picks a free display itself and writes its number to fd 3 (-displayfd): no race
	// with other servers, and no trust in lock files a killed server left behind.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start Xvfb: %v", err)
	}
	w.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // so it removes its lock file and socket
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	number := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		number <- strings.TrimSpace(line)
	}()
	select {
	case n := <-number:
		if n == "" {
			t.Fatal("Xvfb ended without a display")
		}
		return &Display{Name: ":" + n, t: t}
	case <-time.After(10 * time.Second):
		t.Fatal("Xvfb did not come up within 10 s")
	}
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
