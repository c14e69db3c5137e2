package results

import "time"

// OperatorFile is what the operator harness (bench/operator) writes to operator.json and
// bench/cmd/benchreport reads.
type OperatorFile struct {
	Started  time.Time          `json:"started"`
	Settings map[string]string  `json:"settings"`
	Latency  []*OperatorLatency `json:"latency"`
	Scale    *OperatorScale     `json:"scale,omitempty"`
}

// OperatorLatency is one backend at one pod count.
type OperatorLatency struct {
	Backend string `json:"backend"`
	Pods    int    `json:"pods"`
	Workers int    `json:"workers"`
	// Samples: per pod, status update sent → entry first seen in the backend.
	Samples []time.Duration `json:"samples_ns"`
	// Total: first status update sent → last entry seen.
	Total time.Duration `json:"total_ns"`
	Error string        `json:"error,omitempty"`
}

// OperatorScale is the real manager process at R Registrations × P pods.
type OperatorScale struct {
	Mode          string `json:"mode"` // small, full or custom
	Backend       string `json:"backend"`
	Registrations int    `json:"registrations"`
	PodsPer       int    `json:"pods_per_registration"`
	Pods          int    `json:"pods"`
	// MemLimit is the GOMEMLIMIT the manager processes ran with ("" for none), as the chart
	// sets it from the container's memory limit.
	MemLimit string `json:"gomemlimit,omitempty"`
	// Setup: creating the objects (Registrations, pods) and marking the pods Ready.
	Setup time.Duration `json:"setup_ns"`
	// Registered: first pod marked Ready → every entry in the backend and every Registration Ready.
	Registered time.Duration `json:"registered_ns"`
	// Peak memory of the first manager process over the whole run: max sampled VmRSS and VmHWM.
	MaxRSS int64 `json:"max_rss_bytes"`
	HWM    int64 `json:"hwm_bytes"`
	// controller_runtime_reconcile_total of the first process, by controller and result.
	Reconciles map[string]map[string]float64 `json:"reconciles"`
	// Resync: second process started (after the store was wiped) → every entry back.
	Resync       time.Duration                 `json:"resync_ns"`
	ResyncStatus time.Duration                 `json:"resync_status_ns"` // → every Registration Ready with P
	ResyncHWM    int64                         `json:"resync_hwm_bytes"`
	ResyncRecon  map[string]map[string]float64 `json:"resync_reconciles"`
	Error        string                        `json:"error,omitempty"`
}
