package kvendpoint

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	kvopv1 "github.com/kvop/kvop/api/v1"
)

var endpointReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "kvop_endpoint_ready",
	Help: "1 when the KVEndpoint's last probe reached its backend, else 0.",
}, []string{"namespace", "name", "backend"})

func init() { metrics.Registry.MustRegister(endpointReady) }

// setReadyMetric sets the endpoint's series (one: a backend changed in the spec replaces it).
func setReadyMetric(endpoint *kvopv1.KVEndpoint, ready bool) {
	deleteReadyMetric(types.NamespacedName{Namespace: endpoint.Namespace, Name: endpoint.Name})
	v := 0.0
	if ready {
		v = 1
	}
	endpointReady.WithLabelValues(endpoint.Namespace, endpoint.Name, string(endpoint.Spec.Backend)).Set(v)
}

// deleteReadyMetric drops the endpoint's series, whatever its backend was.
func deleteReadyMetric(endpoint types.NamespacedName) {
	endpointReady.DeletePartialMatch(prometheus.Labels{"namespace": endpoint.Namespace, "name": endpoint.Name})
}
