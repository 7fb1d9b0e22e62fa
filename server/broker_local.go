package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// localBroker is the single-node Broker, the default: one interface call
// per publish straight into this node's hub, none per subscriber; the
// cache channels' last events live in memory.
type localBroker struct {
	h     BrokerHandler // set once by Register, before any publish
	cache cacheStore
}

var _ Broker = (*localBroker)(nil)

func (b *localBroker) Register(h BrokerHandler) error {
	b.h = h
	return nil
}

func (b *localBroker) Publish(_ context.Context, m Message) error {
	b.h.HandleMessage(m)
	return nil
}

func (b *localBroker) Command(_ context.Context, c Command) error {
	b.h.HandleCommand(c)
	return nil
}

func (b *localBroker) SetCache(_ context.Context, app, channel string, e CacheEntry) error {
	b.cache.put(chanKey{app, channel}, e)
	return nil
}

func (b *localBroker) Cache(_ context.Context, app, channel string) (CacheEntry, bool, error) {
	e, ok := b.cache.get(chanKey{app, channel})
	return e, ok, nil
}

// cacheStore keeps the last event of each cache channel. Reads skip
// expired entries; a put sweeps them out at most once per
// cacheSweepInterval, bounding memory for channels nobody reads.
type cacheStore struct {
	shards    [numShards]cacheShard
	nextSweep atomic.Int64 // unix nanos
}

type cacheShard struct {
	mu      sync.Mutex // guards entries
	entries map[chanKey]CacheEntry
}

const cacheSweepInterval = time.Minute

func (s *cacheStore) put(k chanKey, e CacheEntry) {
	sh := &s.shards[shardOf(k.app, k.name)]
	sh.mu.Lock()
	if sh.entries == nil {
		sh.entries = make(map[chanKey]CacheEntry)
	}
	sh.entries[k] = e
	sh.mu.Unlock()
	now := time.Now()
	if next := s.nextSweep.Load(); now.UnixNano() >= next &&
		s.nextSweep.CompareAndSwap(next, now.Add(cacheSweepInterval).UnixNano()) {
		s.sweep(now)
	}
}

func (s *cacheStore) get(k chanKey) (CacheEntry, bool) {
	sh := &s.shards[shardOf(k.app, k.name)]
	sh.mu.Lock()
	e, ok := sh.entries[k]
	sh.mu.Unlock()
	if !ok || time.Now().After(e.Expires) {
		return CacheEntry{}, false
	}
	return e, true
}

// sweep drops expired entries.
func (s *cacheStore) sweep(now time.Time) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, e := range sh.entries {
			if now.After(e.Expires) {
				delete(sh.entries, k)
			}
		}
		sh.mu.Unlock()
	}
}

// NewLocalBroker returns the single-node Broker, the default.
func NewLocalBroker() Broker { return &localBroker{} }
