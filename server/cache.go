package server

import (
	"sync"
	"time"
)

// cacheStore keeps the last event published through the HTTP API on each
// cache channel, for replay to new subscribers (§2.3 pusher:cache_miss).
// Entries expire after the app's CacheTTLSeconds; reads skip expired
// entries and sweep drops them.
type cacheStore struct {
	shards [numShards]cacheShard
}

type cacheShard struct {
	mu      sync.Mutex // guards entries
	entries map[chanKey]cacheEntry
}

type cacheEntry struct {
	event, data string
	frame       []byte // the encoded WebSocket frame, replayed as is
	expires     time.Time
}

func (s *cacheStore) put(k chanKey, e cacheEntry) {
	sh := &s.shards[shardOf(k.app, k.name)]
	sh.mu.Lock()
	if sh.entries == nil {
		sh.entries = make(map[chanKey]cacheEntry)
	}
	sh.entries[k] = e
	sh.mu.Unlock()
}

func (s *cacheStore) entry(k chanKey) (cacheEntry, bool) {
	sh := &s.shards[shardOf(k.app, k.name)]
	sh.mu.Lock()
	e, ok := sh.entries[k]
	sh.mu.Unlock()
	if !ok || time.Now().After(e.expires) {
		return cacheEntry{}, false
	}
	return e, true
}

func (s *cacheStore) get(k chanKey) ([]byte, bool) {
	e, ok := s.entry(k)
	return e.frame, ok
}

// sweep drops expired entries, bounding memory for channels nobody reads.
func (s *cacheStore) sweep(now time.Time) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, e := range sh.entries {
			if now.After(e.expires) {
				delete(sh.entries, k)
			}
		}
		sh.mu.Unlock()
	}
}
