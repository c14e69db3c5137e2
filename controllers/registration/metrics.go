package registration

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var registeredEntries = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "kvop_registered_entries",
	Help: "Discovery entries a Registration has in its store now (status.endpoints).",
}, []string{"namespace", "registration"})

func init() {
	metrics.Registry.MustRegister(registeredEntries)
}

func setMetrics(reg types.NamespacedName, entries int32) {
	registeredEntries.WithLabelValues(reg.Namespace, reg.Name).Set(float64(entries))
}

// forgetMetrics drops a deleted Registration's series, so that it does not linger at its last
// value.
func forgetMetrics(reg types.NamespacedName) {
	registeredEntries.DeleteLabelValues(reg.Namespace, reg.Name)
}
