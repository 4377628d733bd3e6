package kube

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
)

// TestStreamLogsEndsItsStreams: when the watch of new pods fails, StreamLogs returns the
// error, and no stream it started writes a line after it returned. The API server here is a
// small HTTP server: one running pod whose log never ends, and a watch that fails.
func TestStreamLogsEndsItsStreams(t *testing.T) {
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"ns","labels":{"app":"a"}},` +
		`"spec":{"containers":[{"name":"c","image":"x"}]},"status":{"phase":"Running"}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/v1/namespaces/ns/pods" && r.URL.Query().Get("watch") == "true":
			time.Sleep(300 * time.Millisecond) // the streams are running by now
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"watch broke","code":500}`)
		case r.URL.Path == "/api/v1/namespaces/ns/pods":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":"1"},"items":[%s]}`, pod)
		case r.URL.Path == "/api/v1/namespaces/ns/pods/p/log":
			w.WriteHeader(http.StatusOK)
			for i := 0; r.Context().Err() == nil; i++ {
				fmt.Fprintf(w, "%s line %d\n", time.Now().UTC().Format(time.RFC3339Nano), i)
				w.(http.Flusher).Flush()
				time.Sleep(5 * time.Millisecond)
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, err := NewCluster(&rest.Config{Host: srv.URL}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deploy := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "a", "namespace": "ns"},
		"spec":     map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "a"}}},
	}}
	var lines atomic.Int64
	var first atomic.Value
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = c.StreamLogs(ctx, []*unstructured.Unstructured{deploy}, LogOptions{Follow: true}, func(l LogLine) {
		if lines.Add(1) == 1 {
			first.Store(l)
		}
	})
	if err == nil || !strings.Contains(err.Error(), "watch") {
		t.Fatalf("StreamLogs returned %v; want the watch's failure", err)
	}
	if ctx.Err() != nil {
		t.Fatal("StreamLogs ran until its context ended")
	}
	got := lines.Load()
	time.Sleep(200 * time.Millisecond)
	if after := lines.Load(); after != got || got == 0 {
		t.Errorf("%d lines before the return, %d after it: a stream outlived the call", got, after)
	}
	if l := first.Load().(LogLine); l.Pod != "p" || l.Container != "c" || l.Line != "line 0" || l.Time.IsZero() {
		t.Errorf("first line %+v", l)
	}
}
