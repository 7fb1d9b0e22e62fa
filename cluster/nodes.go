package cluster

import (
	"context"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
)

// Node states as Nodes reports them.
const (
	// NodeAlive stamped its heartbeat within NodeTimeout.
	NodeAlive = "alive"
	// NodeSilent has not stamped for longer than NodeTimeout: the next
	// reap removes its entries.
	NodeSilent = "silent"
	// NodeLeaving stopped cleanly with entries left: the others reap them
	// at once.
	NodeLeaving = "leaving"
	// NodeReaping is being removed by another node.
	NodeReaping = "reaping"
)

// NodeInfo is one node as Redis knows it.
type NodeInfo struct {
	ID string
	// HeartbeatAge is how long ago the node last stamped its heartbeat, by
	// Redis's clock; zero for a leaving node (it has no heartbeat).
	HeartbeatAge time.Duration
	// Entries counts the node's presence entries in Redis: one per socket
	// in a channel and one per signed-in socket.
	Entries int64
	// State is NodeAlive, NodeSilent, NodeLeaving or NodeReaping.
	State string
}

// Nodes reads the cluster's nodes from Redis: at most limit of them (the
// most recently stamped first, then those being reaped), sorted by id, and
// how many there are in all. It is for an operator's view: two round trips,
// none while Redis is known to be down (it then returns the outage).
func (n *Node) Nodes(ctx context.Context, limit int) (nodes []NodeInfo, total int, err error) {
	if n.degraded() {
		return nil, 0, errDegraded
	}
	if limit <= 0 {
		return nil, 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*n.cfg.OpTimeout)
	defer cancel()
	var (
		clock   *redis.TimeCmd
		count   *redis.IntCmd
		reaped  *redis.IntCmd
		live    *redis.ZSliceCmd
		reaping *redis.ZSliceCmd
	)
	_, err = n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		clock = p.Time(ctx)
		count = p.ZCard(ctx, n.key("nodes"))
		reaped = p.ZCard(ctx, n.key("reaping"))
		live = p.ZRevRangeWithScores(ctx, n.key("nodes"), 0, int64(limit-1))
		reaping = p.ZRangeWithScores(ctx, n.key("reaping"), 0, int64(limit-1))
		return nil
	})
	if err != nil {
		return nil, 0, n.observe("nodes", err)
	}
	now := clock.Val().UnixMilli()
	for _, z := range live.Val() {
		i := NodeInfo{ID: str(z.Member), State: NodeAlive}
		switch {
		case z.Score == 0: // depart zeroes the heartbeat of a node that stopped with entries
			i.State = NodeLeaving
		default:
			i.HeartbeatAge = time.Duration(now-int64(z.Score)) * time.Millisecond
			if i.HeartbeatAge > n.cfg.NodeTimeout {
				i.State = NodeSilent
			}
		}
		nodes = append(nodes, i)
	}
	for _, z := range reaping.Val() {
		if len(nodes) == limit {
			break
		}
		// The score is the reaper's claim, not the node's heartbeat: the
		// node has been silent for at least NodeTimeout.
		nodes = append(nodes, NodeInfo{ID: str(z.Member), State: NodeReaping, HeartbeatAge: n.cfg.NodeTimeout})
	}
	total = int(count.Val() + reaped.Val())
	cards := make([]*redis.IntCmd, len(nodes))
	_, err = n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ni := range nodes {
			cards[i] = p.SCard(ctx, n.key("node", ni.ID))
		}
		return nil
	})
	if err != nil {
		return nil, 0, n.observe("nodes", err)
	}
	for i := range nodes {
		nodes[i].Entries = cards[i].Val()
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	return nodes, total, nil
}
