// Command sandbox-pods makes the sandbox control plane's pods answer on their ports, as real
// containers would: every pod (kwok runs no container) gets a small local server that answers
// as the demo's images do (an HTTP and HTTPS echo naming the pod; PostgreSQL's startup to a database
// client), through a kwok PortForward owned by the pod. ci/run-app
// starts it beside the sandbox, so a forward opened in the browser shows which pod answered.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rorokube/roro/internal/sandbox"
)

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "the sandbox's kubeconfig")
	namespace := flag.String("namespace", "", "answer for the pods of this namespace only (default: all)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *kubeconfig, *namespace); err != nil {
		log.Fatalf("sandbox-pods: %v", err)
	}
}

// run waits for the sandbox's API server, then binds its pods until ctx ends.
func run(ctx context.Context, kubeconfig, namespace string) error {
	var cfgErr error
	for ctx.Err() == nil { // the sandbox may still be starting
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err == nil {
			return sandbox.Serve(ctx, cfg.Host, namespace, kubernetes.NewForConfigOrDie(cfg), dynamic.NewForConfigOrDie(cfg))
		}
		cfgErr = err
		time.Sleep(2 * time.Second)
	}
	return cfgErr
}
