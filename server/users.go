package server

import (
	"sync"

	"github.com/sockudo/sockudo/server/protocol"
)

// userIndex maps this node's signed-in users to their sockets
// (server-to-user events, terminate_connections) and to the sockets
// watching them (watchlist). Who is online across the cluster is
// Presence's business. Sharded like the hub; never two shards at once.
type userIndex struct {
	shards [numShards]userShard
}

type userShard struct {
	mu    sync.Mutex // guards users
	users map[chanKey]*userEntry
}

// userEntry is one user id of one app. It exists while either list is
// non-empty.
type userEntry struct {
	conns    []*conn // sockets signed in as this user
	watchers []*conn // sockets whose watchlist names this user
}

func (u *userIndex) shard(k chanKey) *userShard { return &u.shards[shardOf(k.app, k.name)] }

// with runs fn on the entry of k under its shard lock, creating it, and
// drops it afterwards if it became empty.
func (u *userIndex) with(k chanKey, fn func(e *userEntry)) {
	sh := u.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.users == nil {
		sh.users = make(map[chanKey]*userEntry)
	}
	e := sh.users[k]
	if e == nil {
		e = &userEntry{}
		sh.users[k] = e
	}
	fn(e)
	if len(e.conns) == 0 && len(e.watchers) == 0 {
		delete(sh.users, k)
	}
}

func removeConn(list []*conn, c *conn) []*conn {
	for i, x := range list {
		if x == c {
			last := len(list) - 1
			list[i] = list[last]
			list[last] = nil
			return list[:last]
		}
	}
	return list
}

// add registers c as signed in as userID.
func (u *userIndex) add(c *conn, userID string) {
	u.with(chanKey{c.app.id, userID}, func(e *userEntry) { e.conns = append(e.conns, c) })
}

// watch registers c as a watcher of each id.
func (u *userIndex) watch(c *conn, ids []string) {
	for _, id := range ids {
		u.with(chanKey{c.app.id, id}, func(e *userEntry) { e.watchers = append(e.watchers, c) })
	}
}

// remove forgets c as user and as a watcher of user's watchlist.
func (u *userIndex) remove(c *conn, user *signedUser) {
	u.with(chanKey{c.app.id, user.id}, func(e *userEntry) { e.conns = removeConn(e.conns, c) })
	for _, id := range user.watchlist {
		u.with(chanKey{c.app.id, id}, func(e *userEntry) { e.watchers = removeConn(e.watchers, c) })
	}
}

// each calls fn for every socket signed in as user (watchers false) or
// watching it (true), under the shard lock: fn may only enqueue
// (conn.send, conn.close).
func (u *userIndex) each(app, user string, watchers bool, fn func(c *conn)) {
	k := chanKey{app, user}
	sh := u.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.users[k]
	if e == nil {
		return
	}
	list := e.conns
	if watchers {
		list = e.watchers
	}
	for _, c := range list {
		fn(c)
	}
}

// deliver queues frame on every socket signed in as user but except.
func (u *userIndex) deliver(app, user string, frame []byte, except string) {
	u.each(app, user, false, func(c *conn) {
		if c.socketID != except {
			c.send(frame)
		}
	})
}

// watchlistFrame tells watchers that user came online or went offline.
func watchlistFrame(user string, online bool) []byte {
	if online {
		return protocol.WatchlistFrame([]string{user}, nil)
	}
	return protocol.WatchlistFrame(nil, []string{user})
}
