package kvendpoint

import (
	"context"

	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kvopv1 "github.com/kvop/kvop/api/v1"
)

// secretIndex indexes KVEndpoints by the names of the Secrets they reference.
const secretIndex = "kvendpoint.secretNames"

// referencedSecrets is the index function of secretIndex.
func referencedSecrets(obj client.Object) []string {
	endpoint, ok := obj.(*kvopv1.KVEndpoint)
	if !ok {
		return nil
	}
	var names []string
	if ref := endpoint.Spec.CredentialsSecretRef; ref != nil {
		names = append(names, ref.Name)
	}
	if t := endpoint.Spec.TLS; t != nil && t.SecretRef != nil && (len(names) == 0 || names[0] != t.SecretRef.Name) {
		names = append(names, t.SecretRef.Name)
	}
	return names
}

// endpointsForSecret maps a Secret (created, changed or deleted) to the KVEndpoints that
// reference it, so that a Secret change takes effect without a restart.
func (r *Reconciler) endpointsForSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	var endpoints kvopv1.KVEndpointList
	if err := r.List(ctx, &endpoints, client.InNamespace(secret.GetNamespace()),
		client.MatchingFields{secretIndex: secret.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing the KVEndpoints that reference a Secret", "secret", klog.KObj(secret))
		return nil
	}
	requests := make([]reconcile.Request, 0, len(endpoints.Items))
	for i := range endpoints.Items {
		requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&endpoints.Items[i])})
	}
	return requests
}
