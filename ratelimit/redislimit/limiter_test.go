package redislimit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sockudo/sockudo/ratelimit"
)

// redisAddr is the Redis the tests use; CI starts one there.
const redisAddr = "127.0.0.1:6379"

// newClient returns a client of the test Redis, closed at cleanup. When
// Redis does not answer the test is skipped, unless CI is set: there Redis
// is expected, and its absence fails.
func newClient(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: redisAddr, ContextTimeoutEnabled: true, MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		if os.Getenv("CI") == "" {
			tb.Skipf("no Redis at %s (%v); CI is unset, so skipping", redisAddr, err)
		}
		tb.Fatalf("no Redis at %s: %v", redisAddr, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// newPrefix returns a prefix of this test's own, whose keys are deleted at
// cleanup.
func newPrefix(tb testing.TB, c *redis.Client) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := "rltest-" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		ctx := context.Background()
		keys, _ := scanKeys(ctx, c, p)
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	})
	return p
}

func scanKeys(ctx context.Context, c *redis.Client, prefix string) ([]string, error) {
	var keys []string
	it := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	return keys, it.Err()
}

func mustNew(tb testing.TB, rdb redis.Scripter, prefix, name string, q ratelimit.Quota, fb ratelimit.Limiter, o *Options) *Limiter {
	tb.Helper()
	l, err := New(rdb, prefix, name, q, fb, o)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func memoryFor(q ratelimit.Quota) *ratelimit.Memory {
	return ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: q.Limit, Window: q.Window, Burst: q.Burst})
}

func TestTwoNodesShareOneBudget(t *testing.T) {
	// Two clients stand for two nodes: separate connections, same prefix.
	c1, c2 := newClient(t), newClient(t)
	p := newPrefix(t, c1)
	q := ratelimit.Quota{Limit: 5, Window: time.Minute} // a token per 12 s: no refill during the test
	fb1, fb2 := memoryFor(q), memoryFor(q)
	a := mustNew(t, c1, p, "ws_connect", q, fb1, nil)
	b := mustNew(t, c2, p, "ws_connect", q, fb2, nil)

	for i := range 5 {
		l := a
		if i%2 == 1 {
			l = b
		}
		d := l.Allow("203.0.113.7")
		if !d.Allowed || d.Limit != 5 || d.Remaining != 4-i {
			t.Fatalf("request %d: %+v, want allowed with %d remaining", i+1, d, 4-i)
		}
		// The bucket is full again (i+1) tokens from now, less the
		// little time the test has taken.
		if want := time.Duration(i+1) * 12 * time.Second; d.Reset > want || d.Reset < want-time.Second {
			t.Fatalf("request %d: reset %s, want about %s", i+1, d.Reset, want)
		}
	}
	for _, l := range []*Limiter{a, b} {
		d := l.Allow("203.0.113.7")
		if d.Allowed || d.Remaining != 0 || d.RetryAfter <= 0 || d.RetryAfter > 12*time.Second {
			t.Fatalf("request past the burst: %+v, want refused with 0 < RetryAfter <= 12s", d)
		}
	}
	// Redis answered everything: the fallbacks never saw a key.
	if fb1.Stats().Keys != 0 || fb2.Stats().Keys != 0 || a.Stats() != (Stats{}) || b.Stats() != (Stats{}) {
		t.Fatalf("fallbacks used: %+v %+v, %+v %+v", fb1.Stats(), fb2.Stats(), a.Stats(), b.Stats())
	}
}

func TestDecisionsMatchMemory(t *testing.T) {
	c := newClient(t)
	p := newPrefix(t, c)
	// An hour-long window: the milliseconds the test takes move no
	// token, so both limiters must agree exactly on Allowed and
	// Remaining, and on Reset and RetryAfter up to that time (each
	// limiter's clock starts at its own first call).
	q := ratelimit.Quota{Limit: 3, Window: time.Hour, Burst: 5}
	mem := memoryFor(q)
	red := mustNew(t, c, p, "api", q, memoryFor(q), nil)
	type step struct {
		key   string
		quota *ratelimit.Quota // nil: Allow
	}
	over := &ratelimit.Quota{Limit: 10, Window: time.Hour} // a per-app override, burst 10
	under := &ratelimit.Quota{Limit: 1}                    // window defaults to the limiter's
	steps := []step{{"k", nil}, {"k", nil}, {"k", nil}, {"k", nil}, {"k", nil}, {"k", nil}, {"k", nil},
		{"k", over}, {"k", over}, {"k", over}, {"k", under}, {"j", under}, {"j", under}, {"j", nil}, {"j", nil}}
	for i, s := range steps {
		var dm, dr ratelimit.Decision
		if s.quota == nil {
			dm, dr = mem.Allow(s.key), red.Allow(s.key)
		} else {
			dm, dr = mem.AllowQuota(s.key, *s.quota), red.AllowQuota(s.key, *s.quota)
		}
		near := func(a, b time.Duration) bool { return (a - b).Abs() < 250*time.Millisecond }
		if dm.Allowed != dr.Allowed || dm.Limit != dr.Limit || dm.Remaining != dr.Remaining ||
			!near(dm.Reset, dr.Reset) || !near(dm.RetryAfter, dr.RetryAfter) {
			t.Fatalf("step %d (%+v): memory %+v, redis %+v", i, s, dm, dr)
		}
	}
}

func TestRefillsAtTheRate(t *testing.T) {
	c := newClient(t)
	p := newPrefix(t, c)
	q := ratelimit.Quota{Limit: 10, Window: time.Second, Burst: 2} // a token per 100 ms
	l := mustNew(t, c, p, "refill", q, memoryFor(q), nil)
	l.Allow("k")
	l.Allow("k")
	d := l.Allow("k")
	if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > 100*time.Millisecond {
		t.Fatalf("third request: %+v, want refused with 0 < RetryAfter <= 100ms", d)
	}
	if d.Reset < 100*time.Millisecond || d.Reset > 200*time.Millisecond {
		t.Fatalf("reset %s, want 100-200ms (two tokens to refill)", d.Reset)
	}
	// Waiting what RetryAfter says is enough: one token is back.
	time.Sleep(d.RetryAfter)
	d = l.Allow("k")
	if !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after RetryAfter: %+v, want allowed with 0 remaining", d)
	}
	// And it was only one token: refused until the next one, the second
	// one a token's time later. (How long until the next depends on how
	// late the sleep woke.)
	d = l.Allow("k")
	if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > 100*time.Millisecond ||
		(d.Reset-d.RetryAfter-100*time.Millisecond).Abs() > time.Microsecond {
		t.Fatalf("right after: %+v, want refused for at most 100ms, full 100ms after that", d)
	}
}

func TestKeysAreIndependent(t *testing.T) {
	c := newClient(t)
	p := newPrefix(t, c)
	q := ratelimit.Quota{Limit: 1, Window: time.Minute}
	l := mustNew(t, c, p, "signin", q, memoryFor(q), nil)
	other := mustNew(t, c, p, "api", q, memoryFor(q), nil)
	long := strings.Repeat("u", 500)
	for _, k := range []string{"a", "b", "app\x00" + long, "app\x00" + long + "x", ""} {
		if !l.Allow(k).Allowed {
			t.Fatalf("first request of %.20q refused", k)
		}
		if l.Allow(k).Allowed {
			t.Fatalf("second request of %.20q allowed", k)
		}
	}
	// Another name is another budget for the same key.
	if !other.Allow("a").Allowed {
		t.Fatal("a limiter with another name shares the budget")
	}
}

func TestIdleKeysExpire(t *testing.T) {
	c := newClient(t)
	p := newPrefix(t, c)
	q := ratelimit.Quota{Limit: 10, Window: 200 * time.Millisecond} // a token per 20 ms, burst 10
	l := mustNew(t, c, p, "ttl", q, memoryFor(q), nil)
	ctx := context.Background()
	key := l.redisKey("k")

	l.Allow("k")
	if ttl := c.PTTL(ctx, key).Val(); ttl <= 0 || ttl > 20*time.Millisecond {
		t.Fatalf("PTTL after one request %s, want (0, 20ms]: the time until the bucket is full", ttl)
	}
	for range 9 {
		l.Allow("k")
	}
	if ttl := c.PTTL(ctx, key).Val(); ttl <= 100*time.Millisecond || ttl > 200*time.Millisecond {
		t.Fatalf("PTTL of an empty bucket %s, want (100ms, 200ms]", ttl)
	}
	deadline := time.Now().Add(2 * time.Second)
	for c.Exists(ctx, key).Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatalf("key still there, PTTL %s", c.PTTL(ctx, key).Val())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := l.Allow("k"); !d.Allowed || d.Remaining != 9 {
		t.Fatalf("after expiry: %+v, want a full bucket", d)
	}
}

// countHook counts the commands a client sends and fails them while fail
// is set, standing for a Redis outage without touching the real one.
type countHook struct {
	calls atomic.Int64
	fail  atomic.Bool
}

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.calls.Add(1)
		if h.fail.Load() {
			err := errors.New("injected outage")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

// fakeClock is a settable clock for the retry timing.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestUnreachableRedisFallsBackAndReportsOnce(t *testing.T) {
	// Nothing listens on port 1: every call fails at once.
	opt, err := redis.ParseURL("redis://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	hook := &countHook{}
	rdb.AddHook(hook)

	q := ratelimit.Quota{Limit: 2, Window: time.Minute}
	fb := memoryFor(q)
	clock := newFakeClock()
	var errs []error
	var mu sync.Mutex
	l := mustNew(t, rdb, "rltest", "ws_connect", q, fb, &Options{
		RetryInterval: time.Second,
		Now:           clock.now,
		OnError:       func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() },
	})

	// The fallback answers, with its own budget: neither everything
	// allowed nor everything refused.
	want := []bool{true, true, false, false, false}
	for i, w := range want {
		d := l.Allow("198.51.100.1")
		if d.Allowed != w || d.Limit != 2 || (!w && d.RetryAfter <= 0) {
			t.Fatalf("request %d: %+v, want allowed=%v from the memory fallback", i+1, d, w)
		}
	}
	if n := hook.calls.Load(); n != 1 {
		t.Fatalf("%d calls to Redis within the retry interval, want 1", n)
	}
	if len(errs) != 1 {
		t.Fatalf("%d errors reported, want 1: %v", len(errs), errs)
	}
	if s := l.Stats(); !s.Down || s.Failures != 1 || s.Fallbacks != 5 {
		t.Fatalf("stats %+v", s)
	}

	// After the interval one check tries again; the outage goes on and
	// is not reported again.
	clock.advance(time.Second)
	l.Allow("198.51.100.1")
	l.Allow("198.51.100.1")
	if n := hook.calls.Load(); n != 2 {
		t.Fatalf("%d calls to Redis after one interval, want 2", n)
	}
	if len(errs) != 1 {
		t.Fatalf("%d errors reported, want 1", len(errs))
	}
}

func TestOutageAndRecovery(t *testing.T) {
	rdb := newClient(t)
	p := newPrefix(t, rdb)
	hook := &countHook{}
	rdb.AddHook(hook)
	q := ratelimit.Quota{Limit: 3, Window: time.Hour}
	fb := memoryFor(q)
	clock := newFakeClock()
	var errs, recoveries atomic.Int64
	l := mustNew(t, rdb, p, "api", q, fb, &Options{
		RetryInterval: time.Second, Now: clock.now,
		OnError:   func(error) { errs.Add(1) },
		OnRecover: func() { recoveries.Add(1) },
	})

	if d := l.Allow("app"); !d.Allowed || d.Remaining != 2 {
		t.Fatalf("from Redis: %+v", d)
	}
	hook.fail.Store(true)
	if d := l.Allow("app"); !d.Allowed || d.Remaining != 2 || fb.Stats().Keys != 1 {
		t.Fatalf("first check of the outage: %+v, want the fallback's full bucket", d)
	}
	hook.fail.Store(false)
	// Redis is back, but the interval is not over: still the fallback.
	calls := hook.calls.Load()
	if d := l.Allow("app"); d.Remaining != 1 || hook.calls.Load() != calls {
		t.Fatalf("within the interval: %+v, %d calls, want the fallback and no call", d, hook.calls.Load()-calls)
	}
	clock.advance(time.Second)
	if d := l.Allow("app"); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("after the interval: %+v, want Redis's bucket (one spent before)", d)
	}
	if errs.Load() != 1 || recoveries.Load() != 1 || l.Stats().Down {
		t.Fatalf("errors %d, recoveries %d, stats %+v", errs.Load(), recoveries.Load(), l.Stats())
	}
	// A second outage is reported again.
	hook.fail.Store(true)
	l.Allow("app")
	if errs.Load() != 2 {
		t.Fatalf("errors %d after a second outage, want 2", errs.Load())
	}
}

func TestGroupMeetsAnOutageOnce(t *testing.T) {
	rdb := newClient(t)
	p := newPrefix(t, rdb)
	hook := &countHook{}
	rdb.AddHook(hook)
	clock := newFakeClock()
	var buf syncBuffer
	g, err := NewGroup(rdb, p, &Options{RetryInterval: time.Second, Now: clock.now,
		Log: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	q := ratelimit.Quota{Limit: 2, Window: time.Hour}
	ws, _ := g.New("ws_connect", q, memoryFor(q))
	api, _ := g.New("api", q, memoryFor(q))

	hook.fail.Store(true)
	ws.Allow("k")
	calls := hook.calls.Load()
	// The other limiter does not ask Redis again within the interval.
	for range 3 {
		api.Allow("app")
	}
	if hook.calls.Load() != calls {
		t.Fatalf("%d calls to Redis by the other limiter of the group, want none", hook.calls.Load()-calls)
	}
	hook.fail.Store(false)
	clock.advance(time.Second)
	// Whichever limiter probes ends the outage for both.
	if d := api.Allow("app2"); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("probe: %+v", d)
	}
	if d := ws.Allow("k2"); !d.Allowed || d.Remaining != 1 || g.Stats().Down {
		t.Fatalf("after the probe: %+v, %+v", d, g.Stats())
	}
	out := buf.String()
	if strings.Count(out, "Redis is unreachable") != 1 || strings.Count(out, "Redis answers again") != 1 {
		t.Fatalf("log:\n%s", out)
	}
	if s := g.Stats(); s.Failures != 1 || s.Fallbacks != 4 {
		t.Fatalf("stats %+v", s)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestSilentRedisCostsOneTimeout(t *testing.T) {
	// A Redis that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		<-accepted
		for _, c := range conns {
			c.Close()
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ContextTimeoutEnabled: true, MaxRetries: -1})
	defer rdb.Close()

	q := ratelimit.Quota{Limit: 1, Window: time.Minute}
	l := mustNew(t, rdb, "rltest", "ws_connect", q, memoryFor(q), &Options{Timeout: 50 * time.Millisecond, RetryInterval: time.Hour})
	start := time.Now()
	d := l.Allow("k")
	first := time.Since(start)
	if !d.Allowed || first > time.Second {
		t.Fatalf("first check %+v after %s, want the fallback within about the 50ms timeout", d, first)
	}
	start = time.Now()
	for range 100 {
		l.Allow("k")
	}
	if took := time.Since(start); took > 50*time.Millisecond {
		t.Fatalf("100 checks during the outage took %s: they should not wait for Redis", took)
	}
}

func TestFloodOfDistinctKeysStaysBounded(t *testing.T) {
	c := newClient(t)
	p := newPrefix(t, c)
	q := ratelimit.Quota{Limit: 30, Window: time.Minute} // a token per 2 s
	l := mustNew(t, c, p, "flood", q, memoryFor(q), nil)

	// 10k distinct keys, most of them a kilobyte long (spoofed headers,
	// user ids), spread over 16 goroutines.
	const n = 10_000
	filler := strings.Repeat("x", 1000)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 16 {
				key := fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
				if i%4 != 0 {
					key = fmt.Sprint(i) + filler
				}
				if !l.Allow(key).Allowed {
					t.Errorf("first request of key %d refused", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	if l.Stats() != (Stats{}) {
		t.Fatalf("fallback used during the flood: %+v", l.Stats())
	}

	ctx := context.Background()
	keys, err := scanKeys(ctx, c, p)
	if err != nil {
		t.Fatal(err)
	}
	// One key per distinct key, less those whose TTL already ran out
	// (the flood takes a while under -race).
	if len(keys) == 0 || len(keys) > n {
		t.Fatalf("%d keys in Redis, want 1-%d", len(keys), n)
	}
	maxLen := len(p+":rl:flood:") + 25
	pipe := c.Pipeline()
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		if len(k) > maxLen {
			t.Fatalf("key %.80q is %d bytes, want at most %d", k, len(k), maxLen)
		}
		ttls[i] = pipe.PTTL(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i, cmd := range ttls {
		// Each key holds one spent token: gone within 2 s.
		if ttl := cmd.Val(); ttl == -1 || ttl > 2*time.Second {
			t.Fatalf("key %s: PTTL %s, want at most 2s", keys[i], ttl)
		}
	}
	if usage := c.MemoryUsage(ctx, keys[0]).Val(); usage > 256 {
		t.Fatalf("one bucket takes %d bytes, want at most 256", usage)
	}
	// Two seconds later the flood has left nothing behind.
	deadline := time.Now().Add(5 * time.Second)
	for {
		keys, err := scanKeys(ctx, c, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d keys left after their TTL", len(keys))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedisKeyNames(t *testing.T) {
	l := mustNew(t, redis.NewClient(&redis.Options{}), "sockudo", "signin", ratelimit.Quota{}, ratelimit.Disabled{}, nil)
	tcs := []struct {
		key   string
		plain bool
	}{
		{"203.0.113.7", true},
		{"2001:db8::/64", true},
		{"app-1", true},
		{"", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"app\x00user", false},
		{"with space", false},
		{"#abc", false}, // a client cannot name a hashed key
		{"é", false},
	}
	for _, tc := range tcs {
		got := l.redisKey(tc.key)
		if tc.plain && got != "sockudo:rl:signin:"+tc.key {
			t.Errorf("%q: key %q, want it used as it is", tc.key, got)
		}
		if !tc.plain && (!strings.HasPrefix(got, "sockudo:rl:signin:#") || len(got) != len("sockudo:rl:signin:")+25) {
			t.Errorf("%q: key %q, want a hash", tc.key, got)
		}
	}
	if l.redisKey("#abc") == l.redisKey("#abd") {
		t.Error("two keys share a hash")
	}
}

func TestNewRefusesBadArguments(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{})
	defer rdb.Close()
	ok := ratelimit.Quota{Limit: 1, Window: time.Second}
	tcs := []struct {
		name     string
		rdb      redis.Scripter
		prefix   string
		limiter  string
		q        ratelimit.Quota
		fallback ratelimit.Limiter
	}{
		{"nil client", nil, "p", "n", ok, ratelimit.Disabled{}},
		{"nil fallback", rdb, "p", "n", ok, nil},
		{"empty prefix", rdb, "", "n", ok, ratelimit.Disabled{}},
		{"name with a colon", rdb, "p", "a:b", ok, ratelimit.Disabled{}},
		{"no window", rdb, "p", "n", ratelimit.Quota{Limit: 1}, ratelimit.Disabled{}},
		{"negative burst", rdb, "p", "n", ratelimit.Quota{Limit: 1, Window: time.Second, Burst: -1}, ratelimit.Disabled{}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.rdb, tc.prefix, tc.limiter, tc.q, tc.fallback, nil); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	// An unlimited one never asks Redis (there is none at this address).
	l, err := New(rdb, "p", "n", ratelimit.Quota{}, ratelimit.Disabled{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := l.Allow("k"); !d.Allowed || d.Limit != 0 || l.Stats() != (Stats{}) {
		t.Fatalf("unlimited: %+v, %+v", d, l.Stats())
	}
}

func BenchmarkRedisAllow(b *testing.B) {
	c := newClient(b)
	p := newPrefix(b, c)
	q := ratelimit.Quota{Limit: 1_000_000, Window: time.Second}
	l := mustNew(b, c, p, "bench", q, memoryFor(q), nil)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("10.0.%d.%d", i>>8, i&255)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow(keys[next.Add(1)&1023])
		}
	})
	b.StopTimer()
	if s := l.Stats(); s.Failures > 0 {
		b.Fatalf("Redis failed %d times", s.Failures)
	}
}
