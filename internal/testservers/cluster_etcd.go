package testservers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
)

// StartEtcdCluster starts an n-member cluster of the etcd release that `make tools` builds.
func StartEtcdCluster(n int) (*Cluster, error) {
	return startEtcdCluster("etcd", n, "ETCD_VERSION", "--unsafe-no-fsync")
}

// StartEtcdV2Cluster starts an n-member cluster of Debian's etcd 3.4 with --enable-v2 (the v2
// store is replicated through raft like the v3 one).
func StartEtcdV2Cluster(n int) (*Cluster, error) {
	return startEtcdCluster("etcdv2", n, "ETCD_DEB_VERSION", "--enable-v2=true")
}

func startEtcdCluster(name string, n int, versionKey string, extra ...string) (*Cluster, error) {
	bin, err := toolPath("etcd", versionKey, "etcd")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	procs, err := newMembers(name, n)
	if err != nil {
		return nil, err
	}
	clientURL := func(i int) string { return "http://" + hostPort(ports[2*i]) }
	peerURL := func(i int) string { return "http://" + hostPort(ports[2*i+1]) }
	initial := joinf(n, ",", func(i int) string { return fmt.Sprintf("m%d=%s", i, peerURL(i)) })
	// A token of its own: members of two test clusters can never join each other.
	token := "kvop-" + filepath.Base(procs[0].DataDir)
	httpc := httpClient(nil)
	members := make([]*Server, n)
	for i, p := range procs {
		p.bin = bin
		p.args = append([]string{
			"--name", fmt.Sprintf("m%d", i),
			"--data-dir", filepath.Join(p.DataDir, "data"),
			"--listen-client-urls", clientURL(i), "--advertise-client-urls", clientURL(i),
			"--listen-peer-urls", peerURL(i), "--initial-advertise-peer-urls", peerURL(i),
			"--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", token,
			// 5× faster than etcd's defaults (100 ms / 1 s), so that a killed leader is replaced
			// within about a second, yet slow enough that a loaded test machine (-race, two
			// cores) does not see spurious elections.
			"--heartbeat-interval", "50", "--election-timeout", "500",
		}, extra...)
		url := clientURL(i)
		p.ready = func(ctx context.Context) error { return etcdHealthy(ctx, httpc, url) }
		members[i] = &Server{Process: p, Addr: hostPort(ports[2*i])}
	}
	c, err := startMembers(name, members)
	if err != nil {
		return nil, err
	}
	c.leader = func(ctx context.Context) (int, error) { return etcdLeader(ctx, httpc, c) }
	return c, nil
}

// etcdStatus is the part of /v3/maintenance/status (the gRPC gateway's JSON of
// StatusResponse) that tells who leads. The gateway writes uint64 ids as strings.
type etcdStatus struct {
	Header struct {
		MemberID json.RawMessage `json:"member_id"`
	} `json:"header"`
	Leader json.RawMessage `json:"leader"`
}

// etcdLeader asks every running member for its status: the leader is the member whose own id
// is the leader id it reports (a follower's answer names the leader's id, not its address).
func etcdLeader(ctx context.Context, c *http.Client, cl *Cluster) (int, error) {
	var errs []error
	for _, i := range cl.running() {
		st, err := etcdMemberStatus(ctx, c, "http://"+cl.Members[i].Addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		id, leader := strings.Trim(string(st.Header.MemberID), `"`), strings.Trim(string(st.Leader), `"`)
		if id != "" && id != "0" && id == leader {
			return i, nil
		}
	}
	return -1, fmt.Errorf("%w %v", errNoLeader, errs)
}

func etcdMemberStatus(ctx context.Context, c *http.Client, url string) (*etcdStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v3/maintenance/status", bytes.NewReader([]byte("{}")))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s status: %s %s", url, resp.Status, body)
	}
	var st etcdStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("%s status: %w (%s)", url, err, body)
	}
	return &st, nil
}
