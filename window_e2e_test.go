package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rorokube/roro/core/runtime"
	"github.com/rorokube/roro/core/workspace"
	"github.com/rorokube/roro/gui"
	"github.com/rorokube/roro/internal/sandbox"
	"github.com/rorokube/roro/internal/testcluster"
	"github.com/rorokube/roro/internal/testdbus"
	"github.com/rorokube/roro/internal/testdisplay"
	"github.com/rorokube/roro/internal/testport"
	"github.com/rorokube/roro/themes"
)

// windowSize is the window's size on a display at 96 dpi (one pixel a dp).
var windowSize = image.Pt(1200, 760)

// where returns the centre of the widget described as desc in the window over the workspace
// in dir, from the same UI laid out offscreen.
func where(t testing.TB, dir, desc string) image.Rectangle {
	t.Helper()
	ws, err := workspace.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := runtime.New(ws, runtime.Options{Connect: func(context.Context, string, string) (runtime.Cluster, error) {
		return nil, errors.New("offscreen: no cluster")
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	r, ok := gui.Locate(eng, gui.Options{Theme: themes.Light}, windowSize, desc)
	if !ok {
		t.Fatalf("no %q in the window", desc)
	}
	return r
}

func near(a, b color.Color) bool {
	ar, ag, ab, _ := a.RGBA()
	br, bg, bb, _ := b.RGBA()
	d := func(x, y uint32) uint32 {
		if x > y {
			return (x - y) >> 8
		}
		return (y - x) >> 8
	}
	return d(ar, br) < 24 && d(ag, bg) < 24 && d(ab, bb) < 24
}

// TestWindowEndToEnd: the real binary on a private X display and a private D-Bus session with
// a tray host, against the real control plane: the window opens on the demo workspace, a
// click on api's Up brings db and api up, api's dot turns green, an HTTP request through its
// forward reaches its pod and, once that pod is deleted, its replacement;
// the tray's menu says all is healthy and its Down takes api down, freeing the port; Ctrl-C
// ends roro cleanly, freeing db's.
func TestWindowEndToEnd(t *testing.T) {
	tc := testcluster.Get(t)
	tc.InstallDevEnvironments(t)
	disp := testdisplay.Start(t)
	bus := testdbus.Start(t) // before roro starts: its environment carries the bus
	dir := demoCopy(t, "e2e-")
	// The demo's forwards have fixed ports: held for this test, so only roro binds them.
	apiPort, dbPort := testport.ReserveAt(t, 18080), testport.ReserveAt(t, 15432)
	kc := []string{"--kubeconfig", tc.Kubeconfig, "--workspace", dir}
	t.Cleanup(func() { runCLI(t, append(kc, "down")...) })
	up, sel := where(t, dir, "Up api"), where(t, dir, "Select api")
	// api's pods answer HTTP with their names, as on the sandbox.
	sctx, stopSandbox := context.WithCancel(context.Background())
	sandboxDone := make(chan error, 1)
	go func() { sandboxDone <- sandbox.Serve(sctx, tc.Config.Host, "e2e-demo-api", tc.Kube, tc.Dynamic) }()
	t.Cleanup(func() { stopSandbox(); <-sandboxDone })

	cmd := exec.Command(os.Args[0], kc...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	drawn := filepath.Join(t.TempDir(), "drawn.txt") // what the window drew, frame by frame
	env := append(disp.Env(), "RORO_TEST_MAIN=1", "XDG_STATE_HOME="+t.TempDir(), "XDG_RUNTIME_DIR="+t.TempDir(), "RORO_TEST_STATE_DUMP="+drawn)
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	})
	if err := disp.WaitWindow("Roro", 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// A second launch brings this window forward instead of starting twice.
	second := exec.Command(os.Args[0], kc...)
	second.Env = env
	if b, err := second.CombinedOutput(); err != nil || !strings.Contains(string(b), "roro is already running") {
		t.Errorf("second launch: %v\n%s", err, b)
	}
	disp.Click((up.Min.X+up.Max.X)/2, (up.Min.Y+up.Max.Y)/2)

	ctx := testcluster.Context(t, 40*time.Second)
	err := testcluster.Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		d, err := tc.Kube.AppsV1().Deployments("e2e-demo-api").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		testdisplay.Save(t, disp.Screenshot(), filepath.Join(t.TempDir(), "failed.png"))
		if d := os.Getenv("RORO_SCREENSHOT_DIR"); d != "" {
			testdisplay.Save(t, disp.Screenshot(), filepath.Join(d, "failed.png"))
		}
		t.Fatalf("api never became available after the click: %v\n%s", err, out.String())
	}
	// api's dot, left in its row, turns the palette's healthy green.
	dotAt := image.Pt(sel.Min.X+5, (sel.Min.Y+sel.Max.Y)/2)
	healthy := themes.LightPalette().Healthy
	var shot image.Image
	err = testcluster.Poll(ctx, 250*time.Millisecond, func() (bool, error) {
		shot = disp.Screenshot()
		return near(shot.At(dotAt.X, dotAt.Y), healthy), nil
	})
	if err != nil {
		t.Fatalf("api's dot at %v is %v, not healthy %v", dotAt, shot.At(dotAt.X, dotAt.Y), healthy)
	}
	// The screenshots the README shows, light and dark, when asked for.
	if shots := os.Getenv("RORO_SCREENSHOT_DIR"); shots != "" {
		crop := func(img image.Image) image.Image {
			return img.(interface {
				SubImage(image.Rectangle) image.Image
			}).SubImage(image.Rectangle{Max: windowSize})
		}
		testdisplay.Save(t, crop(shot), filepath.Join(shots, "window-light.png"))
		dark := where(t, dir, "Switch to the dark theme")
		disp.Click((dark.Min.X+dark.Max.X)/2, (dark.Min.Y+dark.Max.Y)/2)
		darkHealthy := themes.DarkPalette().Healthy
		_ = testcluster.Poll(ctx, 100*time.Millisecond, func() (bool, error) {
			shot = disp.Screenshot()
			return near(shot.At(dotAt.X, dotAt.Y), darkHealthy), nil
		})
		testdisplay.Save(t, crop(shot), filepath.Join(shots, "window-dark.png"))
		light := where(t, dir, "Switch to the dark theme") // the same place, now "light"
		disp.Click((light.Min.X+light.Max.X)/2, (light.Min.Y+light.Max.Y)/2)
	}
	// Up from the window starts the forwards: an HTTP request through api's reaches its pod;
	// after the pod is deleted, the same address reaches its replacement.
	first := httpThrough(t, ctx, "http://127.0.0.1:18080/", "")
	pods, err := tc.Kube.CoreV1().Pods("e2e-demo-api").List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("api's pods: %v %d", err, len(pods.Items))
	}
	if !strings.Contains(first, pods.Items[0].Name) {
		t.Errorf("the answer %q is not from pod %s", first, pods.Items[0].Name)
	}
	if err := tc.Kube.CoreV1().Pods("e2e-demo-api").Delete(ctx, pods.Items[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	replaced := httpThrough(t, ctx, "http://127.0.0.1:18080/", pods.Items[0].Name)
	if replaced == first {
		t.Errorf("the forward still reaches the deleted pod: %q", replaced)
	}
	// The window shows the forward reconnected, to the new pod.
	newPod := answeringPod(replaced)
	err = testcluster.Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		b, _ := os.ReadFile(drawn)
		return strings.Contains(string(b), "127.0.0.1:18080 → service/api:http") && strings.Contains(string(b), "connected to pod "+newPod), nil
	})
	if err != nil {
		b, _ := os.ReadFile(drawn)
		t.Fatalf("the window never showed the forward connected to the new pod %s:\n%s", newPod, b)
	}
	// The tray, over D-Bus as the desktop would: its menu says all is well, and its Down on
	// api takes api down (and its forwards with it).
	item, ok := bus.WaitItem(10 * time.Second)
	if !ok {
		t.Fatalf("the tray never registered\n%s", out.String())
	}
	var down testdbus.MenuNode
	err = testcluster.Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		menu, err := bus.Menu(item)
		if err != nil {
			return false, nil
		}
		down, ok = menu.Find("api", "Down")
		return ok && len(menu.Children) > 0 && strings.Contains(menu.Children[0].Label, "healthy"), nil
	})
	if err != nil {
		m, _ := bus.Menu(item)
		t.Fatalf("the tray's menu never said all is healthy with api's Down: %+v", m)
	}
	if err := bus.Click(item, down.ID); err != nil {
		t.Fatal(err)
	}
	err = testcluster.Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		_, err := tc.Kube.AppsV1().Deployments("e2e-demo-api").Get(ctx, "api", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("api's Deployment survived the tray's Down: %v\n%s", err, out.String())
	}
	err = testcluster.Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		ln, err := net.Listen("tcp", apiPort.Addr())
		if err == nil {
			ln.Close()
		}
		return err == nil, nil
	})
	if err != nil {
		t.Errorf("api's forward still holds 18080 after Down")
	}
	// Ctrl-C: roro ends, its forwards stop and free their ports; the apps stay up.
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("roro ended with %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("roro did not end within 10 s of Ctrl-C\n%s", out.String())
	}
	if ln, err := net.Listen("tcp", dbPort.Addr()); err != nil {
		t.Errorf("db's port 15432 still bound after roro ended: %v", err)
	} else {
		ln.Close()
	}
}

// httpThrough gets url until it answers 200 from a pod other than not, and returns the body.
func httpThrough(t *testing.T, ctx context.Context, url, not string) string {
	t.Helper()
	client := &http.Client{Timeout: 3 * time.Second}
	var body string
	err := testcluster.Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		resp, err := client.Get(url)
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		pod := answeringPod(body)
		return resp.StatusCode == http.StatusOK && pod != "" && pod != not, nil
	})
	if err != nil {
		t.Fatalf("GET %s never answered (not from %q): %v; last %q", url, not, err, body)
	}
	return body
}

// answeringPod is the pod an echo answer came from ("os.hostname"), or "" if body is none.
func answeringPod(body string) string {
	var answer struct{ OS struct{ Hostname string } }
	_ = json.Unmarshal([]byte(body), &answer)
	return answer.OS.Hostname
}

// demoCopy copies the demo workspace with its name and its apps' namespaces prefixed, so that a test of the
// desktop app never shares namespaces with the engine's demo tests running beside it.
func demoCopy(t testing.TB, prefix string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("fixtures/demo")); err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(dir, "roro.json")
	data, err := os.ReadFile(ws)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ws, []byte(strings.Replace(string(data), `"name": "demo"`, `"name": "`+prefix+`demo"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"api", "db", "web"} {
		p := filepath.Join(dir, "apps", app, "app.json")
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		moved := strings.Replace(string(data), `"namespace": "demo-`, `"namespace": "`+prefix+`demo-`, 1)
		if moved == string(data) {
			t.Fatalf("fixture changed: no demo namespace in %s", p)
		}
		if err := os.WriteFile(p, []byte(moved), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
