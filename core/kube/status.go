package kube

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Health is an object's health as kstatus computes it: Current, InProgress, Failed,
// Terminating, NotFound or Unknown, with kstatus's message.
type Health struct {
	Status  status.Status
	Message string
}

// Healthy reports whether the object has reached the state its spec asks for.
func (h Health) Healthy() bool { return h.Status == status.CurrentStatus }

// HealthOf computes the health of a live object; nil means the object does not exist.
func HealthOf(live *unstructured.Unstructured) Health {
	if live == nil {
		return Health{Status: status.NotFoundStatus, Message: "not found"}
	}
	res, err := status.Compute(live)
	if err != nil {
		return Health{Status: status.UnknownStatus, Message: err.Error()}
	}
	return Health{Status: res.Status, Message: res.Message}
}
