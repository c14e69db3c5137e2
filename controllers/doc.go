// Package controllers wires kvop's reconcilers into a controller-runtime manager. Each kind has
// its own package with one job:
//
//   - kvendpoint: opens one store per KVEndpoint (in the shared storepool), probes it, and
//     reports Ready with reasons (Connected, Unreachable, AuthFailed, SecretNotFound, ...);
//   - registration: keeps exactly the wanted discovery entries of ready pods in the store;
//   - leaderlease: runs elections for candidate pods (managed) or follows a key (observe),
//     labels the leader pod and reports leader, term and transitions.
//
// Metrics (besides controller-runtime's): kvop_store_requests_total and
// kvop_store_request_duration_seconds by backend and operation (storepool),
// kvop_registered_entries by registration, kvop_leader_transitions_total by lease, and
// kvop_endpoint_ready by endpoint.
package controllers
