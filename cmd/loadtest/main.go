// Command loadtest is a load tool for a Pusher-protocol server (sockudo,
// soketi, Pusher): it opens many WebSocket connections, subscribes them to a
// public channel, publishes signed events through the REST API and reports
// connect time, server RSS per connection, delivery throughput and latency.
//
// Only loopback targets are allowed unless -allow-remote is given.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type config struct {
	URL, HTTP, AppID, Key, Secret, Channel string

	Conns, Subs, Publishes, Payload, Concurrency int
	Rate                                         float64

	Settle, Timeout, Hold       time.Duration
	DialTimeout, ConnectTimeout time.Duration
	HTTPTimeout, MaxRun         time.Duration
	PID                         int
	JSON, AllowRemote           bool
	UniqueChannels              bool
}

const eventName = "bench"

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.URL, "url", "ws://127.0.0.1:6001", "WebSocket base URL (connections go to <url>/app/<key>)")
	fs.StringVar(&c.HTTP, "http", "", "REST API base URL (default: -url with ws→http, wss→https)")
	fs.StringVar(&c.AppID, "app-id", "app-id", "app id")
	fs.StringVar(&c.Key, "key", "app-key", "app key")
	fs.StringVar(&c.Secret, "secret", "app-secret", "app secret")
	fs.IntVar(&c.Conns, "conns", 1000, "connections to open")
	fs.IntVar(&c.Subs, "subs", -1, "how many of the connections subscribe to -channel (-1 = all)")
	fs.StringVar(&c.Channel, "channel", "bench", "public channel to subscribe and publish to")
	fs.IntVar(&c.Publishes, "publishes", 100, "events to publish through the REST API")
	fs.Float64Var(&c.Rate, "rate", 0, "publishes per second (0 = back to back)")
	fs.IntVar(&c.Payload, "payload", 64, "bytes of event data (minimum ~33: the timestamp)")
	fs.IntVar(&c.Concurrency, "concurrency", 50, "parallel dials")
	fs.DurationVar(&c.Settle, "settle", 2*time.Second, "wait after connecting before measuring RSS")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "max wait for deliveries after the last publish")
	fs.IntVar(&c.PID, "pid", 0, "server pid to read VmRSS from /proc/<pid>/status (0 = don't)")
	fs.DurationVar(&c.Hold, "hold", 0, "keep the connections open this long after the report")
	fs.BoolVar(&c.JSON, "json", false, "print the report as JSON")
	fs.BoolVar(&c.UniqueChannels, "unique-channels", false, "each subscribing connection i subscribes to its own channel <-channel>-<i> (memory per subscribed socket; publishes still go to -channel)")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow non-loopback targets")
	fs.DurationVar(&c.DialTimeout, "dial-timeout", 10*time.Second, "per-connection limit for dial + handshake + subscription")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", 120*time.Second, "limit for the whole connect phase")
	fs.DurationVar(&c.HTTPTimeout, "http-timeout", 5*time.Second, "per-publish HTTP timeout")
	fs.DurationVar(&c.MaxRun, "max-run", 0, "hard limit on the run time, exits with status 3 (0 = derived from the other limits)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return c, c.normalize()
}

// normalize fills defaults and validates; it also enforces the loopback rule.
func (c *config) normalize() error {
	if c.Conns < 0 || c.Publishes < 0 || c.Payload < 0 || c.Rate < 0 {
		return errors.New("-conns, -publishes, -payload and -rate must be >= 0")
	}
	if c.Subs < 0 || c.Subs > c.Conns {
		c.Subs = c.Conns
	}
	if c.Concurrency < 1 {
		c.Concurrency = 1
	}
	if c.Channel == "" {
		return errors.New("-channel must not be empty")
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 120 * time.Second
	}
	if c.HTTPTimeout <= 0 {
		c.HTTPTimeout = 5 * time.Second
	}
	if c.HTTP == "" {
		h, err := deriveHTTPBase(c.URL)
		if err != nil {
			return err
		}
		c.HTTP = h
	}
	if _, err := buildWSURL(c.URL, c.Key); err != nil {
		return err
	}
	if _, _, err := eventsURLParts(c.HTTP, c.AppID); err != nil {
		return err
	}
	if !c.AllowRemote {
		if err := checkLoopbackURL(c.URL); err != nil {
			return err
		}
		if err := checkLoopbackURL(c.HTTP); err != nil {
			return err
		}
	}
	return nil
}

// publishBudget bounds the publish phase.
func (c *config) publishBudget() time.Duration {
	if c.Rate > 0 {
		return time.Duration(float64(c.Publishes)/c.Rate*float64(time.Second))*3/2 + 30*time.Second
	}
	return 60*time.Second + time.Duration(c.Publishes)*20*time.Millisecond
}

// maxRun is the watchdog limit: every phase is bounded, this is a backstop.
func (c *config) maxRun() time.Duration {
	if c.MaxRun > 0 {
		return c.MaxRun
	}
	return c.ConnectTimeout + c.Settle + c.publishBudget() + c.Timeout + c.Hold + 60*time.Second
}

type report struct {
	GoMaxProcs int    `json:"gomaxprocs"`
	NumCPU     int    `json:"nproc"`
	GoVersion  string `json:"go_version"`
	URL        string `json:"url"`
	HTTP       string `json:"http"`
	Channel    string `json:"channel"`

	ConnsRequested   int     `json:"conns_requested"`
	ConnsOpened      int     `json:"conns_opened"`
	ConnsFailed      int     `json:"conns_failed"`
	FirstConnError   string  `json:"first_conn_error,omitempty"`
	Subscribed       int     `json:"subscribed"`
	ConnectSeconds   float64 `json:"connect_seconds"`
	ConnectsPerSec   float64 `json:"connects_per_sec"`
	SettleSeconds    float64 `json:"settle_seconds"`
	ServerPID        int     `json:"server_pid"`
	RSSBeforeKiB     int64   `json:"server_rss_before_kib"`
	RSSAfterKiB      int64   `json:"server_rss_after_connect_kib"`
	RSSPerConnKiB    float64 `json:"server_rss_per_conn_kib"`
	RSSEndKiB        int64   `json:"server_rss_end_kib"`
	RSSError         string  `json:"rss_error,omitempty"`
	ClientRSSKiB     int64   `json:"client_rss_kib"`
	PublishesWanted  int     `json:"publishes_requested"`
	PublishesOK      int     `json:"publishes_ok"`
	PublishesFailed  int     `json:"publishes_failed"`
	FirstPublishErr  string  `json:"first_publish_error,omitempty"`
	PayloadBytes     int     `json:"payload_bytes"`
	Rate             float64 `json:"rate"`
	PublishSeconds   float64 `json:"publish_seconds"`
	Expected         uint64  `json:"expected_deliveries"`
	Delivered        uint64  `json:"delivered"`
	Unparsed         uint64  `json:"unparsed_events,omitempty"`
	WindowSeconds    float64 `json:"delivery_window_seconds"`
	DeliveredPerSec  float64 `json:"delivered_per_sec"`
	LatencyP50Ms     float64 `json:"latency_p50_ms"`
	LatencyP90Ms     float64 `json:"latency_p90_ms"`
	LatencyP99Ms     float64 `json:"latency_p99_ms"`
	LatencyMaxMs     float64 `json:"latency_max_ms"`
	LatencyMeanMs    float64 `json:"latency_mean_ms"`
	Dropped          uint64  `json:"dropped_conns"`
	FirstDropError   string  `json:"first_drop_error,omitempty"`
	ServerPings      uint64  `json:"server_pings"`
	ServerErrors     uint64  `json:"server_errors"`
	DeliveryTimedOut bool    `json:"delivery_timed_out"`
	Interrupted      bool    `json:"interrupted,omitempty"`
}

type loadtest struct {
	cfg       config
	ctx       context.Context
	wsURL     string
	subscribe string
	hist      *histogram

	clients      []*client
	connFailed   int
	subscribed   int
	firstConnErr string

	loops          sync.WaitGroup
	closing        atomic.Bool
	delivered      atomic.Uint64
	unparsed       atomic.Uint64
	dropped        atomic.Uint64
	pings          atomic.Uint64
	serverErrors   atomic.Uint64
	lastDeliveryNs atomic.Int64

	dropMu       sync.Mutex
	firstDropErr string

	firstPublishNs int64 // wall clock of the first publish attempt
}

func (lt *loadtest) noteDrop(err error) {
	lt.dropMu.Lock()
	defer lt.dropMu.Unlock()
	if lt.firstDropErr == "" && err != nil {
		lt.firstDropErr = err.Error()
	}
}

// run executes the whole test. logw gets progress lines; the report is
// returned and printed by the caller. If afterReport is non-nil it is called
// with the report before the hold and the close (so a long -hold does not
// delay the output).
func run(ctx context.Context, cfg config, logw io.Writer, afterReport func(*report)) (*report, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	wsURL, _ := buildWSURL(cfg.URL, cfg.Key)
	lt := &loadtest{
		cfg:       cfg,
		ctx:       ctx,
		wsURL:     wsURL,
		subscribe: subscribeFrame(cfg.Channel),
		hist:      newHistogram(),
	}
	rep := &report{
		GoMaxProcs: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(),
		URL: cfg.URL, HTTP: cfg.HTTP, Channel: cfg.Channel,
		ConnsRequested: cfg.Conns, ServerPID: cfg.PID, PublishesWanted: cfg.Publishes,
		PayloadBytes: max(cfg.Payload, minEventData), Rate: cfg.Rate,
	}
	logf := func(format string, a ...any) { fmt.Fprintf(logw, format+"\n", a...) }
	rss := func(dst *int64) {
		if cfg.PID <= 0 {
			return
		}
		v, err := readRSS(cfg.PID)
		if err != nil {
			if rep.RSSError == "" {
				rep.RSSError = err.Error()
			}
			return
		}
		*dst = v
	}

	// Connect.
	rss(&rep.RSSBeforeKiB)
	logf("connecting %d (%d subscribing to %q) to %s, %d at a time", cfg.Conns, cfg.Subs, cfg.Channel, wsURL, cfg.Concurrency)
	t0 := time.Now()
	lt.connectAll()
	connectDur := time.Since(t0)
	rep.ConnsOpened, rep.ConnsFailed, rep.Subscribed = len(lt.clients), lt.connFailed, lt.subscribed
	rep.FirstConnError = lt.firstConnErr
	rep.ConnectSeconds = connectDur.Seconds()
	rep.ConnectsPerSec = rate(uint64(rep.ConnsOpened), connectDur)
	logf("opened %d, failed %d in %v", rep.ConnsOpened, rep.ConnsFailed, connectDur.Round(time.Millisecond))

	// Settle, then measure.
	if cfg.Settle > 0 {
		sleepCtx(ctx, cfg.Settle)
	}
	rep.SettleSeconds = cfg.Settle.Seconds()
	rss(&rep.RSSAfterKiB)
	if rep.RSSBeforeKiB > 0 && rep.RSSAfterKiB > 0 {
		rep.RSSPerConnKiB = perConnKiB(rep.RSSBeforeKiB, rep.RSSAfterKiB, rep.ConnsOpened)
	}
	if v, err := readRSS(0); err == nil {
		rep.ClientRSSKiB = v
	}

	// Publish.
	if cfg.Publishes > 0 && ctx.Err() == nil {
		logf("publishing %d events of %d bytes to %s", cfg.Publishes, rep.PayloadBytes, cfg.HTTP)
		lt.publishAll(rep)
	}

	// Wait for deliveries.
	rep.Expected = uint64(rep.PublishesOK) * uint64(rep.Subscribed)
	deadline := time.Now().Add(cfg.Timeout)
	for lt.delivered.Load() < rep.Expected && time.Now().Before(deadline) && ctx.Err() == nil {
		sleepCtx(ctx, 5*time.Millisecond)
	}
	rep.DeliveryTimedOut = lt.delivered.Load() < rep.Expected
	rep.Delivered = lt.delivered.Load()
	rep.Unparsed = lt.unparsed.Load()
	if last, first := lt.lastDeliveryNs.Load(), lt.firstPublishNs; last > 0 && first > 0 && last > first {
		w := time.Duration(last - first)
		rep.WindowSeconds = w.Seconds()
		rep.DeliveredPerSec = rate(rep.Delivered, w)
	}
	counts := lt.hist.snapshot()
	maxNs := lt.hist.maxNs.Load()
	rep.LatencyP50Ms = percentileMs(counts, 0.50, maxNs)
	rep.LatencyP90Ms = percentileMs(counts, 0.90, maxNs)
	rep.LatencyP99Ms = percentileMs(counts, 0.99, maxNs)
	rep.LatencyMaxMs = float64(maxNs) / 1e6
	if n := lt.hist.n.Load(); n > 0 {
		rep.LatencyMeanMs = float64(lt.hist.sumNs.Load()) / float64(n) / 1e6
	}
	rss(&rep.RSSEndKiB)
	rep.Dropped = lt.dropped.Load()
	lt.dropMu.Lock()
	rep.FirstDropError = lt.firstDropErr
	lt.dropMu.Unlock()
	rep.ServerPings = lt.pings.Load()
	rep.ServerErrors = lt.serverErrors.Load()
	rep.Interrupted = ctx.Err() != nil

	if afterReport != nil {
		afterReport(rep)
	}
	if cfg.Hold > 0 && ctx.Err() == nil {
		logf("holding %d connections for %v", len(lt.clients), cfg.Hold)
		sleepCtx(ctx, cfg.Hold)
	}
	if lt.closeAll(5 * time.Second) {
		logf("some read loops did not end within 5s of closing")
	}
	return rep, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// publishAll POSTs cfg.Publishes signed events, paced by cfg.Rate.
func (lt *loadtest) publishAll(rep *report) {
	cfg := lt.cfg
	origin, path, _ := eventsURLParts(cfg.HTTP, cfg.AppID)
	dialer := &net.Dialer{Timeout: cfg.HTTPTimeout, Control: dialControl(cfg.AllowRemote)}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{
		Transport:     tr,
		Timeout:       cfg.HTTPTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	ctx, cancel := context.WithTimeout(lt.ctx, cfg.publishBudget())
	defer cancel()

	start := time.Now()
	consecutiveTransportErrs := 0
	for i := 0; i < cfg.Publishes; i++ {
		if cfg.Rate > 0 {
			target := start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
			if d := time.Until(target); d > 0 {
				sleepCtx(ctx, d)
			}
		}
		if ctx.Err() != nil {
			if rep.FirstPublishErr == "" {
				rep.FirstPublishErr = "publish phase stopped: " + ctx.Err().Error()
			}
			break
		}
		now := time.Now()
		body := eventBody(eventName, cfg.Channel, now.UnixNano(), cfg.Payload)
		u := signedURL(origin, path, http.MethodPost, cfg.Key, cfg.Secret, body, now.Unix())
		if i == 0 {
			lt.firstPublishNs = now.UnixNano()
		}
		status, respBody, err := post(ctx, hc, u, body)
		switch {
		case err != nil:
			rep.PublishesFailed++
			consecutiveTransportErrs++
			if rep.FirstPublishErr == "" {
				rep.FirstPublishErr = err.Error()
			}
		case status != http.StatusOK:
			rep.PublishesFailed++
			consecutiveTransportErrs = 0
			if rep.FirstPublishErr == "" {
				rep.FirstPublishErr = fmt.Sprintf("HTTP %d: %s", status, strings.TrimSpace(respBody))
			}
		default:
			rep.PublishesOK++
			consecutiveTransportErrs = 0
		}
		if consecutiveTransportErrs >= 10 {
			rep.FirstPublishErr += " (stopped after 10 consecutive transport errors)"
			break
		}
	}
	rep.PublishSeconds = time.Since(start).Seconds()
}

func post(ctx context.Context, hc *http.Client, u string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(string(body)))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // allow keep-alive reuse
	return resp.StatusCode, string(b), nil
}

func kib(v int64) string {
	if v <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(v)/1024)
}

func printText(w io.Writer, r *report) {
	fmt.Fprintf(w, "machine:     GOMAXPROCS=%d nproc=%d %s %s/%s\n", r.GoMaxProcs, r.NumCPU, r.GoVersion, runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "target:      %s (REST %s), channel %q\n", r.URL, r.HTTP, r.Channel)
	fmt.Fprintf(w, "connections: %d opened, %d failed, %d subscribed, connect time %.3fs (%.0f conn/s)\n",
		r.ConnsOpened, r.ConnsFailed, r.Subscribed, r.ConnectSeconds, r.ConnectsPerSec)
	if r.FirstConnError != "" {
		fmt.Fprintf(w, "             first connect error: %s\n", r.FirstConnError)
	}
	if r.ServerPID > 0 {
		fmt.Fprintf(w, "server RSS:  pid %d, before %s, after connect+%gs settle %s, delta %.2f KiB/conn, end %s\n",
			r.ServerPID, kib(r.RSSBeforeKiB), r.SettleSeconds, kib(r.RSSAfterKiB), r.RSSPerConnKiB, kib(r.RSSEndKiB))
		if r.RSSError != "" {
			fmt.Fprintf(w, "             RSS error: %s\n", r.RSSError)
		}
	} else {
		fmt.Fprintf(w, "server RSS:  not measured (no -pid)\n")
	}
	fmt.Fprintf(w, "client RSS:  %s\n", kib(r.ClientRSSKiB))
	pace := "back to back"
	if r.Rate > 0 {
		pace = fmt.Sprintf("%g/s", r.Rate)
	}
	fmt.Fprintf(w, "publishes:   %d ok, %d failed of %d, %d-byte data, %s, %.3fs\n",
		r.PublishesOK, r.PublishesFailed, r.PublishesWanted, r.PayloadBytes, pace, r.PublishSeconds)
	if r.FirstPublishErr != "" {
		fmt.Fprintf(w, "             first publish error: %s\n", r.FirstPublishErr)
	}
	pct := 100.0
	if r.Expected > 0 {
		pct = 100 * float64(r.Delivered) / float64(r.Expected)
	}
	fmt.Fprintf(w, "deliveries:  expected %d, delivered %d (%.2f%%), %.0f/s over %.3fs (first publish to last delivery)",
		r.Expected, r.Delivered, pct, r.DeliveredPerSec, r.WindowSeconds)
	if r.DeliveryTimedOut {
		fmt.Fprintf(w, ", TIMED OUT")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "latency ms:  p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f\n",
		r.LatencyP50Ms, r.LatencyP90Ms, r.LatencyP99Ms, r.LatencyMaxMs, r.LatencyMeanMs)
	fmt.Fprintf(w, "other:       dropped conns %d, server pings %d, pusher:error after connect %d, unparsed events %d\n",
		r.Dropped, r.ServerPings, r.ServerErrors, r.Unparsed)
	if r.FirstDropError != "" {
		fmt.Fprintf(w, "             first drop: %s\n", r.FirstDropError)
	}
	if r.Interrupted {
		fmt.Fprintf(w, "             interrupted\n")
	}
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	limit := cfg.maxRun()
	time.AfterFunc(limit, func() {
		fmt.Fprintf(os.Stderr, "loadtest: max run time %v exceeded, exiting\n", limit)
		os.Exit(3)
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	print := func(r *report) {
		if cfg.JSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(r)
		} else {
			printText(os.Stdout, r)
		}
	}
	if _, err := run(ctx, cfg, os.Stderr, print); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}
