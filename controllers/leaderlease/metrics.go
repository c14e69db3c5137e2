package leaderlease

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var leaderTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "kvop_leader_transitions_total",
	Help: "Leader changes of a LeaderLease (a new leader different from the previous one) seen by this kvop process.",
}, []string{"namespace", "lease"})

func init() {
	metrics.Registry.MustRegister(leaderTransitions)
}

// forgetMetrics drops the series of a deleted lease.
func forgetMetrics(lease types.NamespacedName) {
	leaderTransitions.DeleteLabelValues(lease.Namespace, lease.Name)
}
