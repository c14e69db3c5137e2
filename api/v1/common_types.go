package v1

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// Condition types and reasons. Every kind has a Ready condition; its reason says why in one
// CamelCase word, its message in a sentence.
const (
	// ConditionReady is True when the object does what it asks for.
	ConditionReady = "Ready"

	// KVEndpoint reasons.
	ReasonConnected      = "Connected"      // the last probe reached the backend
	ReasonUnreachable    = "Unreachable"    // the backend did not answer within the timeout
	ReasonAuthFailed     = "AuthFailed"     // the backend refused the credentials or certificate
	ReasonSecretNotFound = "SecretNotFound" // a referenced Secret does not exist
	ReasonInvalidSecret  = "InvalidSecret"  // a referenced Secret lacks a key or holds a bad value
	ReasonInvalidTLS     = "InvalidTLS"     // the TLS material cannot be used
	ReasonProbeFailed    = "ProbeFailed"    // the backend answered the probe with an error

	// Registration and LeaderLease reasons.
	ReasonEndpointNotFound = "EndpointNotFound" // the referenced KVEndpoint does not exist
	ReasonEndpointNotReady = "EndpointNotReady" // the referenced KVEndpoint is not Ready
	ReasonStoreError       = "StoreError"       // a write to or read from the backend failed
	ReasonInvalidSpec      = "InvalidSpec"      // the spec cannot be acted on (e.g. a bad selector)
	ReasonRegistered       = "Registered"       // every wanted entry is in the store
	ReasonNoLeader         = "NoLeader"         // nobody holds the lease
	ReasonLeaderElected    = "LeaderElected"    // a leader holds the lease
	ReasonObserving        = "Observing"        // observe mode: following the key
	ReasonDeleting         = "Deleting"         // the finalizer is removing what kvop wrote
)

// Finalizer is set on Registrations and LeaderLeases so that kvop removes what it wrote to
// the backend before the object goes.
const Finalizer = "kvop.io/cleanup"
