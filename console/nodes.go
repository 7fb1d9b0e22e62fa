package console

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Nodes reports the cluster in Redis mode (ADAPTER_DRIVER=redis); main's
// adapter over cluster.Node satisfies it. It is read at most once per
// nodesCacheTTL, whatever the number of consoles polling.
type Nodes interface {
	// Nodes returns this node's view of the cluster, with at most limit
	// nodes listed.
	Nodes(ctx context.Context, limit int) ClusterView
}

// ClusterView is one node's view of the cluster.
type ClusterView struct {
	// Self is this node's id.
	Self string `json:"self"`
	// Degraded is empty while this node reaches Redis, else a short reason
	// (never the Redis URL): the node then serves its own clients only and
	// Nodes is empty.
	Degraded string `json:"degraded,omitempty"`
	// Total counts the nodes Redis lists; Nodes may hold fewer (the cap).
	Total int        `json:"total"`
	Nodes []NodeView `json:"nodes"`
}

// NodeView is one node of the cluster.
type NodeView struct {
	ID string `json:"id"`
	// HeartbeatAgeMs is how long ago the node stamped its heartbeat.
	HeartbeatAgeMs int64 `json:"heartbeat_age_ms"`
	// State is alive, silent (about to be reaped), leaving or reaping.
	State string `json:"state"`
	// Entries counts the node's presence entries in Redis (one per socket
	// in a channel, one per signed-in socket).
	Entries int64 `json:"entries"`
}

const (
	// maxNodes caps the nodes one answer lists.
	maxNodes = 64
	// nodesCacheTTL bounds how often the console reads the cluster from
	// Redis: a poll per second per console must not become a Redis load.
	nodesCacheTTL = time.Second
	// nodesTimeout bounds one read.
	nodesTimeout = 2 * time.Second
)

// nodesCache holds the last ClusterView for nodesCacheTTL. Its mutex is
// held across the read, so concurrent consoles share one.
type nodesCache struct {
	mu   sync.Mutex
	at   time.Time
	view ClusterView
}

func (n *nodesCache) get(src Nodes, now func() time.Time) ClusterView {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.at.IsZero() && now().Sub(n.at) < nodesCacheTTL {
		return n.view
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodesTimeout)
	defer cancel()
	n.view = src.Nodes(ctx, maxNodes)
	if len(n.view.Nodes) > maxNodes {
		n.view.Nodes = n.view.Nodes[:maxNodes]
	}
	if n.view.Nodes == nil {
		n.view.Nodes = []NodeView{}
	}
	n.at = now()
	return n.view
}

// nodes is GET /console/api/nodes: the cluster's nodes, for the operator
// (an app's login sees its own app, not the cluster's load). 404 outside
// Redis mode.
func (c *Console) nodes(w http.ResponseWriter, r *http.Request, s *session) {
	if c.d.Nodes == nil {
		c.fail(w, http.StatusNotFound, "not in Redis mode")
		return
	}
	if !s.operator {
		c.fail(w, http.StatusForbidden, "the operator token is needed to see the cluster")
		return
	}
	c.json(w, http.StatusOK, c.nodeCache.get(c.d.Nodes, c.d.Now))
}
