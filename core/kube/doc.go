// Package kube talks to clusters: server-side apply and dry run, prune, diff, status, logs,
// and env read from objects with JSONPath. It knows nothing about the UI.
package kube
