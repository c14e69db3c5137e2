package testservers

import (
	"fmt"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Kube is a real Kubernetes API server (with its etcd) run by envtest. There is no kubelet:
// pods never run, and tests set their IP and Ready condition through the status subresource.
type Kube struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client // typed client with Scheme
	Scheme *runtime.Scheme
}

// KubeOptions configure StartKube.
type KubeOptions struct {
	// CRDDirectoryPaths are installed before StartKube returns (missing paths are an error).
	CRDDirectoryPaths []string
	// Scheme for Client; nil means client-go's built-in types only.
	Scheme *runtime.Scheme
}

// EnvtestAssets is the KUBEBUILDER_ASSETS directory that `make tools` fills: the API server and
// the etcd that envtest runs.
func EnvtestAssets() (string, error) {
	bin, err := toolPath("envtest", "KUBERNETES_VERSION", "kube-apiserver")
	if err != nil {
		return "", err
	}
	if _, err := toolPath("envtest", "KUBERNETES_VERSION", "etcd"); err != nil {
		return "", err
	}
	return filepath.Dir(bin), nil
}

// StartKube starts kube-apiserver and etcd through envtest. Call Stop when done.
func StartKube(opts KubeOptions) (*Kube, error) {
	assets, err := EnvtestAssets()
	if err != nil {
		return nil, err
	}
	scheme := opts.Scheme
	if scheme == nil {
		scheme = runtime.NewScheme()
		if err := clientgoscheme.AddToScheme(scheme); err != nil {
			return nil, err
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     opts.CRDDirectoryPaths,
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest (kube-apiserver and etcd from %s): %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Kube{Env: env, Config: cfg, Client: c, Scheme: scheme}, nil
}

// Stop stops the API server and its etcd.
func (k *Kube) Stop() error { return k.Env.Stop() }

// KubeAPIServer starts an API server for the test and stops it when the test ends.
func KubeAPIServer(t testing.TB, opts KubeOptions) *Kube {
	t.Helper()
	k, err := StartKube(opts)
	if err != nil {
		t.Fatalf("test server: %v", err)
	}
	t.Cleanup(func() {
		if err := k.Stop(); err != nil {
			t.Errorf("stopping envtest: %v", err)
		}
	})
	return k
}
