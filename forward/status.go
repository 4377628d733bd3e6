package forward

import (
	"fmt"
	"time"
)

// State is where a forward stands.
type State string

// States a forward reports.
const (
	// Starting: listeners are being bound.
	Starting State = "starting"
	// Listening: bound, and not connected to any pod yet (none exists or none is Ready); a
	// connection that arrives now is held for up to Spec.Hold.
	Listening State = "listening"
	// Connected: the upgraded connection to Pod is up and new connections go to it. It says
	// nothing of the pod's port until a connection tries it (roro does not probe the port: a
	// probe is a connection the application sees); a port that refuses turns it Failed.
	Connected State = "connected"
	// Reconnecting: the connection to the pod broke, the pod went away, or it cannot be
	// reached; Reason says why.
	Reconnecting State = "reconnecting"
	// Failed: connections fail for a reason roro cannot fix by reconnecting (the pod's port
	// refuses, the target does not exist); the listeners stay bound and it recovers when the
	// cause goes.
	Failed State = "failed"
	// Stopped: the forward has ended and its ports are free.
	Stopped State = "stopped"
)

// Port is one forwarded port as bound.
type Port struct {
	Local  int    `json:"local"`
	Remote string `json:"remote"`
	// Resolved is the pod's port number Remote resolved to, 0 before a pod is chosen.
	Resolved int `json:"resolved"`
}

// Event is one change in a forward's life, kept in its event log.
type Event struct {
	// Seq numbers a forward's events from 1, so a reader of the bounded log knows what it
	// has already seen.
	Seq     uint64    `json:"seq"`
	At      time.Time `json:"at"`
	State   State     `json:"state"`
	Pod     string    `json:"pod,omitempty"`
	Message string    `json:"message"`
}

func (e Event) String() string {
	pod := ""
	if e.Pod != "" {
		pod = " pod " + e.Pod
	}
	return fmt.Sprintf("%s %s%s: %s", e.At.Format("15:04:05.000"), e.State, pod, e.Message)
}

// Status is a forward's state at one moment.
type Status struct {
	Target    string    `json:"target"`
	Namespace string    `json:"namespace"`
	Address   string    `json:"address"`
	Ports     []Port    `json:"ports"`
	State     State     `json:"state"`
	Pod       string    `json:"pod,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Since     time.Time `json:"since"`
	BytesIn   int64     `json:"bytesIn"`
	BytesOut  int64     `json:"bytesOut"`
	Open      int64     `json:"open"`
	Total     int64     `json:"total"`
	// Failures counts connections that got no service: held past the hold time, or refused.
	Failures int64 `json:"failures"`
	// Cut counts connections that were open when their pod went away; they ended.
	Cut int64 `json:"cut"`
	// Replayed counts connections sent to another pod connection because theirs ended or
	// went away before the pod answered (the bytes sent so far replayed).
	Replayed int64 `json:"replayed"`
	// Retried counts tries again of connections that a pod refused in its first seconds of
	// taking connections (the start grace).
	Retried int64   `json:"retried"`
	Events  []Event `json:"events"`
}

// maxEvents bounds the event log.
const maxEvents = 200
