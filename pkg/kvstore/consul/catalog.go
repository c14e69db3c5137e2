package consul

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/kvop/kvop/pkg/kvstore"
)

var _ kvstore.Catalog = (*store)(nil)

// keeper refreshes the TTL check of one service this store registered.
type keeper struct {
	stop context.CancelFunc
	done chan struct{}
}

// checkID is the ID Consul gives the only check of a service registered with one Check.
func checkID(serviceID string) string { return "service:" + serviceID }

// RegisterService registers svc with the agent (the one that answers: services live on the
// agent they were registered with) and keeps its TTL check passing until DeregisterService or
// Close. Registering again replaces the service and its check, which is how a new store (a
// restarted kvop) takes over the instances of an old one without a gap.
func (s *store) RegisterService(ctx context.Context, svc kvstore.CatalogService, check kvstore.CatalogCheck) error {
	if check.TTL <= 0 {
		return wrap("register", svc.ID, kvstore.Mark(kvstore.ErrInvalidKey, fmt.Errorf("check TTL must be positive")))
	}
	if err := s.registerService(ctx, svc, check); err != nil {
		return wrap("register", svc.ID, err)
	}
	s.keep(svc, check)
	return nil
}

func (s *store) registerService(ctx context.Context, svc kvstore.CatalogService, check kvstore.CatalogCheck) error {
	reg := &api.AgentServiceRegistration{
		ID: svc.ID, Name: svc.Name, Address: svc.Address, Port: svc.Port,
		Tags: slices.Clone(svc.Tags), Meta: svc.Meta,
		Check: &api.AgentServiceCheck{
			CheckID: checkID(svc.ID),
			Name:    "kvop TTL",
			TTL:     check.TTL.String(),
			// Passing from the start: the instance serves at once, as a KeepAlive key exists at once.
			Status:                         api.HealthPassing,
			DeregisterCriticalServiceAfter: check.DeregisterAfter.String(),
		},
	}
	return s.call(ctx, true, s.cfg.ConnectionTimeout, func(ctx context.Context, c *api.Client) error {
		// ReplaceExistingChecks: a re-registration leaves exactly our check, whatever was there.
		return c.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx))
	})
}

// keep starts (or restarts) the refresh of svc's check. It passes the check every third of the
// TTL, so two refreshes may fail before the check turns critical, and registers the service
// again when the agent no longer knows the check (the agent reaped it after a long outage, or
// lost its state).
func (s *store) keep(svc kvstore.CatalogService, check kvstore.CatalogCheck) {
	ctx, cancel := context.WithCancel(s.ctx)
	k := &keeper{stop: cancel, done: make(chan struct{})}
	s.mu.Lock()
	if s.keepers == nil {
		s.keepers = map[string]*keeper{}
	}
	old := s.keepers[svc.ID]
	s.keepers[svc.ID] = k
	s.mu.Unlock()
	if old != nil {
		old.stop()
	}
	if !s.spawn(func() {
		defer close(k.done)
		interval := max(check.TTL/3, 100*time.Millisecond)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := s.call(ctx, true, s.cfg.ConnectionTimeout, func(ctx context.Context, c *api.Client) error {
				return c.Agent().UpdateTTLOpts(checkID(svc.ID), "kept alive by kvop", api.HealthPassing, readOpts(ctx))
			})
			if err != nil && unknownCheck(err) && ctx.Err() == nil {
				_ = s.registerService(ctx, svc, check)
			}
			// Other errors (agent unreachable): the next tick tries again; the check turns
			// critical only if the outage outlasts the TTL.
		}
	}) {
		close(k.done)
	}
}

// unknownCheck: the agent does not (or no longer) know the check.
func unknownCheck(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "does not have associated TTL") || strings.Contains(msg, "Unknown check") ||
		strings.Contains(msg, "404")
}

// DeregisterService stops refreshing the service's check and removes the service from the agent.
func (s *store) DeregisterService(ctx context.Context, id string) error {
	s.mu.Lock()
	k := s.keepers[id]
	delete(s.keepers, id)
	s.mu.Unlock()
	if k != nil {
		// Stopped first, so that no refresh re-registers what is being removed.
		k.stop()
		<-k.done
	}
	err := s.call(ctx, true, s.cfg.ConnectionTimeout, func(ctx context.Context, c *api.Client) error {
		err := c.Agent().ServiceDeregisterOpts(id, readOpts(ctx))
		if err != nil && strings.Contains(err.Error(), "404") {
			return nil // already gone
		}
		return err
	})
	return wrap("deregister", id, err)
}

// Services returns the agent's instances of the service name, sorted by ID. These are the
// instances this agent hosts, which is where this store registers (the catalog across agents
// is Consul's own view of them).
func (s *store) Services(ctx context.Context, name string) ([]kvstore.CatalogService, error) {
	var found map[string]*api.AgentService
	err := s.call(ctx, false, s.cfg.ConnectionTimeout, func(ctx context.Context, c *api.Client) error {
		var err error
		found, err = c.Agent().ServicesWithFilterOpts(fmt.Sprintf("Service == %q", name), readOpts(ctx))
		return err
	})
	if err != nil {
		return nil, wrap("services", name, err)
	}
	out := make([]kvstore.CatalogService, 0, len(found))
	for _, svc := range found {
		out = append(out, kvstore.CatalogService{
			ID: svc.ID, Name: svc.Service, Address: svc.Address, Port: svc.Port,
			Tags: svc.Tags, Meta: svc.Meta,
		})
	}
	slices.SortFunc(out, func(a, b kvstore.CatalogService) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
