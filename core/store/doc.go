// Package store keeps the workspace in git: a commit per change, history, diff, revert, and
// sync with a remote. It never talks to a cluster.
package store
