// Command roro is "Docker Compose for Kubernetes": it groups manifests into apps kept as JSON
// in a git repo and runs them with an explicit lifecycle. main only wires flags and
// subcommands to the core packages; run is the testable entry point.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

func main() {
	started := time.Now()
	// client-go logs what it could not do through klog ("Couldn't get current server API
	// group list", a watch that ended); roro reports every failure it acts on in its own words,
	// so klog's lines would only say the same thing twice, in another format.
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first Ctrl-C asks the command to stop and tidy up; a second one, or a SIGTERM after
	// it, ends the process at once, whatever it is doing (a render that never ends).
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := runAt(ctx, started, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
