package v1_test

import (
	"context"
	"strings"
	"testing"
	"time"

	kvopv1 "github.com/kvop/kvop/api/v1"
)

// TestFormatValidation: the API server refuses format settings that do not fit together, and
// defaults the native formats' settings.
func TestFormatValidation(t *testing.T) {
	skydns := func(s *kvopv1.RegistrationSpec) {
		s.Format = kvopv1.FormatSkyDNS
		s.SkyDNS = &kvopv1.SkyDNSSpec{Domain: "kvop.local"}
	}
	refused := []struct {
		name   string
		mutate func(*kvopv1.RegistrationSpec)
		want   string
	}{
		{"unknown format", func(s *kvopv1.RegistrationSpec) { s.Format = "dns" }, "Unsupported value"},
		{"skydns without spec.skydns", func(s *kvopv1.RegistrationSpec) { s.Format = kvopv1.FormatSkyDNS }, "spec.skydns is required with format skydns"},
		{"spec.skydns with kv", func(s *kvopv1.RegistrationSpec) { s.SkyDNS = &kvopv1.SkyDNSSpec{Domain: "kvop.local"} }, "spec.skydns is required with format skydns and only allowed"},
		{"spec.curator with skydns", func(s *kvopv1.RegistrationSpec) { skydns(s); s.Curator = &kvopv1.CuratorSpec{} }, "spec.curator is only allowed with format curator"},
		{"spec.consulCatalog with kv", func(s *kvopv1.RegistrationSpec) { s.ConsulCatalog = &kvopv1.ConsulCatalogSpec{} }, "spec.consulCatalog is only allowed"},
		{"skydns bad domain", func(s *kvopv1.RegistrationSpec) { skydns(s); s.SkyDNS.Domain = "Kvop_Local" }, "spec.skydns.domain"},
		{"skydns service not a label", func(s *kvopv1.RegistrationSpec) { skydns(s); s.Service = "Web.v1" }, "must be a DNS label"},
		{"skydns path with slash", func(s *kvopv1.RegistrationSpec) { skydns(s); s.SkyDNS.Path = "a/b" }, "spec.skydns.path"},
		{"curator relative base path", func(s *kvopv1.RegistrationSpec) {
			s.Format = kvopv1.FormatCurator
			s.Curator = &kvopv1.CuratorSpec{BasePath: "services"}
		}, "spec.curator.basePath"},
		{"curator base path in /zookeeper", func(s *kvopv1.RegistrationSpec) {
			s.Format = kvopv1.FormatCurator
			s.Curator = &kvopv1.CuratorSpec{BasePath: "/zookeeper/x"}
		}, "ZooKeeper's and kvop's own trees"},
		{"consul deregister after 10s", func(s *kvopv1.RegistrationSpec) {
			s.Format = kvopv1.FormatConsulCatalog
			s.ConsulCatalog = &kvopv1.ConsulCatalogSpec{DeregisterCriticalServiceAfter: dur("10s")}
		}, "between 1m and 168h"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := kube.Client.Create(ctx, kreg(tc.mutate))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a refusal containing %q", err, tc.want)
			}
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := kreg(skydns)
	if err := kube.Client.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.Spec.SkyDNS.Path != "skydns" || r.Spec.SkyDNS.TTL != 30 {
		t.Errorf("skydns defaults: %+v", r.Spec.SkyDNS)
	}
	// The format is immutable.
	r.Spec.Format = kvopv1.FormatKV
	r.Spec.SkyDNS = nil
	if err := kube.Client.Update(ctx, r); err == nil || !strings.Contains(err.Error(), "spec.format is immutable") {
		t.Errorf("format change: %v, want refused as immutable", err)
	}
	kv := kreg(func(*kvopv1.RegistrationSpec) {})
	if err := kube.Client.Create(ctx, kv); err != nil {
		t.Fatal(err)
	}
	if kv.Spec.Format != kvopv1.FormatKV {
		t.Errorf("format default = %q, want kv", kv.Spec.Format)
	}
	c := kreg(func(s *kvopv1.RegistrationSpec) {
		s.Format = kvopv1.FormatCurator
		s.Curator = &kvopv1.CuratorSpec{}
	})
	if err := kube.Client.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c.Spec.Curator.BasePath != "/services" {
		t.Errorf("curator basePath default = %q", c.Spec.Curator.BasePath)
	}
}
