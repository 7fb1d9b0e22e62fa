package server

import "sync"

// ipConns counts the open sockets of each client IP for
// MaxConnectionsPerIP. With no cap it does nothing and holds nothing; with
// one, it holds an entry per IP that has sockets open, removed with the
// last one, so an address flood cannot grow it beyond the open sockets.
type ipConns struct {
	limit  int // 0: no cap
	shards [numShards]ipShard
}

type ipShard struct {
	mu sync.Mutex // guards n
	n  map[string]int
}

// acquire counts one more socket for ip and reports whether it is within
// the cap; a refused socket is not counted.
func (p *ipConns) acquire(ip string) bool {
	if p.limit <= 0 {
		return true
	}
	sh := &p.shards[shardOf("", ip)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.n[ip] >= p.limit {
		return false
	}
	if sh.n == nil {
		sh.n = make(map[string]int)
	}
	sh.n[ip]++
	return true
}

// release uncounts a socket that acquire counted.
func (p *ipConns) release(ip string) {
	if p.limit <= 0 {
		return
	}
	sh := &p.shards[shardOf("", ip)]
	sh.mu.Lock()
	if n := sh.n[ip]; n <= 1 {
		delete(sh.n, ip)
	} else {
		sh.n[ip] = n - 1
	}
	sh.mu.Unlock()
}

// count returns the sockets counted for ip (tests).
func (p *ipConns) count(ip string) int {
	sh := &p.shards[shardOf("", ip)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.n[ip]
}
