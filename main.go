// Command roro is "Docker Compose for Kubernetes": it groups manifests into apps kept as JSON
// in a git repo and runs them with an explicit lifecycle. main only wires flags and
// subcommands to the core packages; run is the testable entry point.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	started := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runAt(ctx, started, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
