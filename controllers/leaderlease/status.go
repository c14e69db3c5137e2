package leaderlease

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kvopv1 "github.com/kvop/kvop/api/v1"
	"github.com/kvop/kvop/controllers/status"
)

// observation is what one reconcile learnt about the election.
type observation struct {
	key     string
	managed bool
	// synced: the follower has read the key; until then leader and term are unknown.
	synced bool
	leader string
	term   uint64
	err    error // the follower's last read failed
	// campaignErr: a campaign's last error since a campaign last won (managed).
	campaignErr error

	candidates int    // Ready candidate pods (managed)
	holdFor    string // the restart rule holds the others back for this pod
}

// tenure is a new leadership that status recorded, for the event and the metric.
type tenure struct {
	leader, previous string
	term             uint64
	transition       bool // previous is a different, non-empty leader
}

// applyObservation writes obs into st (for spec generation gen) and returns the new tenure
// it recorded, if any.
func applyObservation(st *kvopv1.LeaderLeaseStatus, gen int64, obs observation, now metav1.Time) *tenure {
	st.Key = obs.key
	var recorded *tenure
	if obs.synced && (obs.leader != st.Leader || int64(obs.term) != st.Term) {
		st.Leader, st.Term = obs.leader, int64(obs.term)
		if obs.leader == "" {
			st.LeaderSince = nil
		} else {
			recorded = &tenure{leader: obs.leader, previous: st.LastLeader, term: obs.term}
			recorded.transition = st.LastLeader != "" && st.LastLeader != obs.leader
			if recorded.transition {
				st.Transitions++
			}
			st.LastLeader = obs.leader
			st.LeaderSince = &now
		}
	}
	ready, reason, message := readiness(st, obs)
	status.SetReady(&st.Conditions, gen, ready, reason, message)
	return recorded
}

// readiness is the Ready condition for an election that runs.
func readiness(st *kvopv1.LeaderLeaseStatus, obs observation) (bool, string, string) {
	switch {
	case obs.err != nil:
		return false, status.ReasonFor(obs.err), fmt.Sprintf("reading the election key %s failed: %v", obs.key, obs.err)
	case !obs.synced:
		return false, kvopv1.ReasonNoLeader, fmt.Sprintf("starting: reading the election key %s", obs.key)
	case st.Leader != "":
		return true, kvopv1.ReasonLeaderElected, fmt.Sprintf("%s leads (term %d)", st.Leader, st.Term)
	case !obs.managed:
		return false, kvopv1.ReasonNoLeader, fmt.Sprintf("nobody holds %s (observe mode: no process campaigns for it)", obs.key)
	case obs.candidates == 0:
		return false, kvopv1.ReasonNoLeader, "no Ready candidate pod"
	case obs.campaignErr != nil:
		return false, status.ReasonFor(obs.campaignErr), fmt.Sprintf("campaigning for %s failed: %v", obs.key, obs.campaignErr)
	case obs.holdFor != "":
		return false, kvopv1.ReasonNoLeader, fmt.Sprintf("waiting for %s, the leader before the election restarted, to be elected again", obs.holdFor)
	default:
		return false, kvopv1.ReasonNoLeader, fmt.Sprintf("%d Ready candidate pods are campaigning", obs.candidates)
	}
}

// eventNote describes a new tenure for the LeaderElected event.
func (t *tenure) eventNote() string {
	switch {
	case t.transition:
		return fmt.Sprintf("%s took over from %s (term %d)", t.leader, t.previous, t.term)
	case t.previous == t.leader:
		return fmt.Sprintf("%s elected again (term %d)", t.leader, t.term)
	default:
		return fmt.Sprintf("%s elected (term %d)", t.leader, t.term)
	}
}
