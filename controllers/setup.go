package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/kvop/kvop/controllers/kvendpoint"
	"github.com/kvop/kvop/controllers/leaderlease"
	"github.com/kvop/kvop/controllers/registration"
	"github.com/kvop/kvop/controllers/storepool"
)

// Options configure kvop's controllers.
type Options struct {
	// ClusterID marks every entry this install writes (with the Registration's UID), so that
	// installs sharing a backend never delete each other's entries. "" means the UID of the
	// kube-system namespace, which is unique per cluster and stable.
	ClusterID string
	// ProbeInterval is how often each KVEndpoint's store is probed; 0 means 30s.
	ProbeInterval time.Duration
	// SkipNameValidation lets several managers run in one process (tests).
	SkipNameValidation bool
}

// ConfigureManager sets the manager options kvop needs on opts (keeping what opts already has):
//   - Secrets are read straight from the API server when a KVEndpoint references them and never
//     cached, so the manager holds no copy of the cluster's Secrets (the kvendpoint controller
//     watches only their metadata, to notice changes);
//   - cached objects are kept without their managedFields, which kvop never reads and which
//     are often the largest part of an object;
//   - cached Pods, one per pod of the cluster and most of the manager's memory, keep only the
//     fields the controllers read (see TrimPod).
func ConfigureManager(opts *manager.Options) {
	opts.Client.Cache = &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}
	opts.Cache.DefaultTransform = cache.TransformStripManagedFields()
	if opts.Cache.ByObject == nil {
		opts.Cache.ByObject = map[client.Object]cache.ByObject{}
	}
	opts.Cache.ByObject[&corev1.Pod{}] = cache.ByObject{Transform: TrimPod}
}

// TrimPod is the cache transform of Pods: it keeps what the Registration and LeaderLease
// controllers read — name, namespace, uid, resourceVersion, labels, creation and deletion
// times, spec.nodeName, the names and ports of containers and init containers, and
// status phase, podIP(s) and conditions — and drops the rest (annotations, managedFields,
// volumes, env, container statuses...). kvop only ever merge-patches a Pod's labels, computed
// from two copies of the same trimmed object, so nothing it drops can be written back.
func TrimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone (cache.DeletedFinalStateUnknown) passes unchanged
	}
	trimmed := &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, ResourceVersion: pod.ResourceVersion,
			Generation: pod.Generation, CreationTimestamp: pod.CreationTimestamp,
			DeletionTimestamp: pod.DeletionTimestamp, Labels: pod.Labels,
		},
		Spec: corev1.PodSpec{
			NodeName:       pod.Spec.NodeName,
			Containers:     trimContainers(pod.Spec.Containers),
			InitContainers: trimContainers(pod.Spec.InitContainers),
		},
		Status: corev1.PodStatus{
			Phase: pod.Status.Phase, PodIP: pod.Status.PodIP, PodIPs: pod.Status.PodIPs,
			Conditions: pod.Status.Conditions,
		},
	}
	return trimmed, nil
}

func trimContainers(in []corev1.Container) []corev1.Container {
	if len(in) == 0 {
		return nil
	}
	out := make([]corev1.Container, len(in))
	for i, c := range in {
		out[i] = corev1.Container{Name: c.Name, Ports: c.Ports, RestartPolicy: c.RestartPolicy}
	}
	return out
}

// Setup adds the store pool and the three controllers to mgr.
func Setup(ctx context.Context, mgr manager.Manager, opts Options) (*storepool.Pool, error) {
	if opts.ClusterID == "" {
		id, err := clusterID(ctx, mgr.GetAPIReader())
		if err != nil {
			return nil, err
		}
		opts.ClusterID = id
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = 30 * time.Second
	}
	pool := storepool.New()
	if err := mgr.Add(pool); err != nil {
		return nil, err
	}
	if err := (&kvendpoint.Reconciler{
		Client: mgr.GetClient(), Pool: pool, Recorder: mgr.GetEventRecorder("kvop-kvendpoint"),
		ProbeInterval: opts.ProbeInterval,
	}).SetupWithManager(mgr, opts.SkipNameValidation); err != nil {
		return nil, fmt.Errorf("kvendpoint controller: %w", err)
	}
	if err := (&registration.Reconciler{
		Client: mgr.GetClient(), Pool: pool, Recorder: mgr.GetEventRecorder("kvop-registration"),
		ClusterID: opts.ClusterID,
	}).SetupWithManager(mgr, opts.SkipNameValidation); err != nil {
		return nil, fmt.Errorf("registration controller: %w", err)
	}
	if err := (&leaderlease.Reconciler{
		Client: mgr.GetClient(), Pool: pool, Recorder: mgr.GetEventRecorder("kvop-leaderlease"),
	}).SetupWithManager(mgr, opts.SkipNameValidation); err != nil {
		return nil, fmt.Errorf("leaderlease controller: %w", err)
	}
	return pool, nil
}

// The default cluster id is read once at start-up.
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get,resourceNames=kube-system

// clusterID returns the UID of the kube-system namespace.
func clusterID(ctx context.Context, c client.Reader) (string, error) {
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: "kube-system"}, &ns); err != nil {
		return "", fmt.Errorf("reading the kube-system namespace for the default --cluster-id (set --cluster-id to avoid it): %w", err)
	}
	return string(ns.UID), nil
}
