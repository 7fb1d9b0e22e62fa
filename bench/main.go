// Command bench reproduces the performance targets of issue 12 against
// this repository's server and prints one table.
//
// It builds bin/sockudo and bin/loadtest (unless -no-build), then runs each
// scenario on a fresh server with a fresh temporary SOCKUDO_DB_PATH, the
// server pinned to -server-cpu and the load tool (cmd/loadtest) to
// -load-cpu with taskset. Each scenario holds an exclusive flock on -lock
// while it runs, so measurements of several people on one machine never
// overlap. Only loopback addresses are used.
//
//	go run ./bench                                   # every scenario, 5,000 connections
//	go run ./bench -conns 20000 -scenarios conns,unique
//	go run ./bench -scenarios paced -paced10k
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// perProcess is the most connections one load process opens. Open files
// are capped at 20,000 per process here, for the server too, which needs a
// few descriptors besides its sockets: -conns 20000 runs two processes of
// 9,990, 19,980 sockets.
const perProcess = 9990

// split divides n connections between ceil(n/10,000) load processes of at
// most perProcess each.
func split(n int) []int {
	procs := (n + 9999) / 10000
	if procs == 0 {
		return nil
	}
	per := min((n+procs-1)/procs, perProcess)
	var out []int
	for i := 0; i < procs; i++ {
		k := min(per, n)
		out = append(out, k)
		n -= k
	}
	return out
}

// The issue-12 targets. Ratios against soketi are turned into figures with
// soketi 1.6.1 measured on the same 2-core machine in the issue (11.3 µs
// per delivered message, paced p99 16.7 ms at 50/s to 1,000 subscribers).
const (
	targetIdleMiB     = 8.0
	targetPerConnKiB  = 4.2
	soketiCPUPerMsgUs = 11.3
	soketiPacedP99Ms  = 16.7
	targetHTTPPerSec  = 20000
	targetStartupMs   = 50
	targetBinaryMiB   = 15.0
)

var allScenarios = []string{"idle", "conns", "unique", "fanout", "paced", "http", "startup", "size"}

type options struct {
	scenarios        string
	conns            int
	fanoutSubs       int
	fanoutPublishes  int
	pacedSubs        int
	paced10k         bool
	pacedPublishes   int
	pacedRate        float64
	paced10kRate     float64
	httpSubs         int
	httpPublishes    int
	httpPublishers   int
	apps             int
	startupRuns      int
	settle           time.Duration
	serverCPU        string
	loadCPU          string
	lock             string
	noBuild          bool
	keep             bool
	verbose          bool
	bin, loadtestBin string
}

func main() {
	var o options
	flag.StringVar(&o.scenarios, "scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios: "+strings.Join(allScenarios, ", "))
	flag.IntVar(&o.conns, "conns", 5000, "connections for conns and unique (above 9,990: several load processes)")
	flag.IntVar(&o.fanoutSubs, "fanout-subs", 1000, "subscribers in fanout")
	flag.IntVar(&o.fanoutPublishes, "fanout-publishes", 1000, "back-to-back publishes in fanout")
	flag.IntVar(&o.pacedSubs, "paced-subs", 1000, "subscribers in paced")
	flag.BoolVar(&o.paced10k, "paced10k", false, "paced also runs with 10,000 subscribers")
	flag.IntVar(&o.pacedPublishes, "paced-publishes", 500, "publishes in paced")
	flag.Float64Var(&o.pacedRate, "paced-rate", 50, "publishes per second in paced")
	flag.Float64Var(&o.paced10kRate, "paced10k-rate", 5, "publishes per second of the 10,000-subscriber run (50/s would be 500k deliveries/s, more than one core fans out)")
	flag.IntVar(&o.httpSubs, "http-subs", 10, "subscribers of the channel in http")
	flag.IntVar(&o.httpPublishes, "http-publishes", 100000, "signed POST /events in http")
	flag.IntVar(&o.httpPublishers, "http-publishers", 8, "parallel keep-alive connections in http")
	flag.IntVar(&o.apps, "apps", 1000, "apps in the store for startup")
	flag.IntVar(&o.startupRuns, "startup-runs", 5, "server starts in startup (the median is reported)")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "wait after connecting before reading RSS")
	flag.StringVar(&o.serverCPU, "server-cpu", "0", "taskset CPU list of the server (empty: not pinned)")
	flag.StringVar(&o.loadCPU, "load-cpu", "1", "taskset CPU list of the load tool (empty: not pinned)")
	flag.StringVar(&o.lock, "lock", "/tmp/perf.lock", "file to flock during each scenario (empty: none)")
	flag.BoolVar(&o.noBuild, "no-build", false, "use -bin and -loadtest as they are")
	flag.StringVar(&o.bin, "bin", "bin/sockudo", "the server binary")
	flag.StringVar(&o.loadtestBin, "loadtest", "bin/loadtest", "the load tool binary")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directories")
	flag.BoolVar(&o.verbose, "v", false, "pass the server's and load tool's stderr through")
	flag.Parse()

	b := &bench{o: o, log: os.Stderr}
	if err := b.run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type row struct{ figure, value, target, note string }

type bench struct {
	o    options
	log  io.Writer
	rows []row
	idle float64 // MiB, for the extrapolation
}

func (b *bench) logf(format string, a ...any) {
	fmt.Fprintf(b.log, "bench: "+format+"\n", a...)
}

func (b *bench) run() error {
	want := strings.Split(b.o.scenarios, ",")
	for _, s := range want {
		if !slices.Contains(allScenarios, s) {
			return fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(allScenarios, ", "))
		}
	}
	if err := raiseNoFile(); err != nil {
		return err
	}
	if !b.o.noBuild {
		if err := b.build(); err != nil {
			return err
		}
	}
	for _, s := range allScenarios { // in a fixed order, whatever -scenarios says
		if !slices.Contains(want, s) {
			continue
		}
		b.logf("scenario %s", s)
		var err error
		switch s {
		case "size":
			err = b.size() // a build, not a measurement: no lock
		default:
			err = b.locked(map[string]func() error{
				"idle": b.idleRSS, "conns": func() error { return b.memory(false) },
				"unique": func() error { return b.memory(true) }, "fanout": b.fanout,
				"paced": b.paced, "http": b.httpRate, "startup": b.startup,
			}[s])
		}
		if err != nil {
			b.rows = append(b.rows, row{s, "FAILED", "", err.Error()})
			b.logf("%s failed: %v", s, err)
		}
	}
	b.print(os.Stdout)
	return nil
}

func (b *bench) build() error {
	for _, c := range [][]string{
		{"go", "build", "-o", b.o.bin, "."},
		{"go", "build", "-o", b.o.loadtestBin, "./cmd/loadtest"},
	} {
		b.logf("%s", strings.Join(c, " "))
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(c, " "), err)
		}
	}
	return nil
}

// locked runs f holding an exclusive flock on -lock.
func (b *bench) locked(f func() error) error {
	if b.o.lock == "" {
		return f()
	}
	fd, err := os.OpenFile(b.o.lock, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return err
	}
	defer fd.Close()
	if err := syscall.Flock(int(fd.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b.logf("waiting for %s (another measurement runs)", b.o.lock)
		if err := syscall.Flock(int(fd.Fd()), syscall.LOCK_EX); err != nil {
			return err
		}
	}
	defer syscall.Flock(int(fd.Fd()), syscall.LOCK_UN)
	return f()
}

// raiseNoFile raises the open-files limit to the hard limit; the server and
// load processes inherit it.
func raiseNoFile() error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	l.Cur = l.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}

// pinned prefixes argv with taskset when cpus is set.
func pinned(cpus string, argv ...string) *exec.Cmd {
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	return exec.Command(argv[0], argv[1:]...)
}

// ---------------------------------------------------------------------------
// The server.

type server struct {
	cmd   *exec.Cmd
	pid   int
	port  int
	dir   string
	ready time.Duration // from exec to the first 200 of /up
	done  chan error
	keep  bool
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts the server on a fresh port with its database in dir
// (a new temporary directory when dir is empty) and waits for /up.
func (b *bench) startServer(dir string) (*server, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "sockudo-bench-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	bin, _ := filepath.Abs(b.o.bin)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"RATE_LIMITER_ENABLED=false", "METRICS_ENABLED=false", "LOG_LEVEL=warn",
		"SOCKUDO_DB_PATH="+filepath.Join(dir, "sockudo.db"),
		"HOST=127.0.0.1", "PORT="+strconv.Itoa(port))
	cmd.Stdout = io.Discard
	cmd.Stderr = io.Discard
	if b.o.verbose {
		cmd.Stderr = os.Stderr
	}
	s := &server{cmd: cmd, port: port, dir: dir, done: make(chan error, 1), keep: b.o.keep}
	start := time.Now()
	if err := startPinned(cmd, b.o.serverCPU); err != nil {
		return nil, err
	}
	s.pid = cmd.Process.Pid
	go func() { s.done <- cmd.Wait() }()

	hc := &http.Client{Timeout: time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d/up", port)
	deadline := start.Add(15 * time.Second)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.ready = time.Since(start)
				hc.CloseIdleConnections()
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("server exited before /up answered: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("server: no 200 from /up within 15s")
		}
		time.Sleep(time.Millisecond)
	}
}

// stop ends the server (SIGTERM, then SIGKILL after 10 s) and removes its
// directory.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	if !s.keep {
		_ = os.RemoveAll(s.dir)
	}
}

// rssKiB is VmRSS of pid.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, errors.New("no VmRSS")
}

// ---------------------------------------------------------------------------
// The load tool.

// loadReport is the part of cmd/loadtest's -json report the table uses.
type loadReport struct {
	ConnsOpened     int     `json:"conns_opened"`
	ConnsFailed     int     `json:"conns_failed"`
	FirstConnError  string  `json:"first_conn_error"`
	Subscribed      int     `json:"subscribed"`
	PublishesOK     int     `json:"publishes_ok"`
	PublishesFailed int     `json:"publishes_failed"`
	FirstPublishErr string  `json:"first_publish_error"`
	PublishesPerSec float64 `json:"publishes_per_sec"`
	Expected        uint64  `json:"expected_deliveries"`
	Delivered       uint64  `json:"delivered"`
	DeliveredPerSec float64 `json:"delivered_per_sec"`
	P50             float64 `json:"latency_p50_ms"`
	P99             float64 `json:"latency_p99_ms"`
	Max             float64 `json:"latency_max_ms"`
	CPUPerDelivery  float64 `json:"server_cpu_us_per_delivery"`
	CPUSeconds      float64 `json:"server_cpu_seconds"`
	Dropped         uint64  `json:"dropped_conns"`
	TimedOut        bool    `json:"delivery_timed_out"`
}

func (r *loadReport) check() error {
	switch {
	case r.ConnsFailed > 0:
		return fmt.Errorf("%d connections failed: %s", r.ConnsFailed, r.FirstConnError)
	case r.PublishesFailed > 0:
		return fmt.Errorf("%d publishes failed: %s", r.PublishesFailed, r.FirstPublishErr)
	case r.TimedOut || r.Delivered != r.Expected:
		return fmt.Errorf("delivered %d of %d", r.Delivered, r.Expected)
	case r.Dropped > 0:
		return fmt.Errorf("%d connections dropped", r.Dropped)
	}
	return nil
}

// load is one running load process.
type load struct {
	cmd  *exec.Cmd
	done chan error
}

// startLoad runs the load tool against srv and returns once it has printed
// its report; the process may still run (-hold). args are extra flags.
func (b *bench) startLoad(srv *server, args ...string) (*loadReport, *load, error) {
	bin, _ := filepath.Abs(b.o.loadtestBin)
	argv := append([]string{bin, "-url", fmt.Sprintf("ws://127.0.0.1:%d", srv.port),
		"-pid", strconv.Itoa(srv.pid), "-json"}, args...)
	cmd := pinned(b.o.loadCPU, argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if b.o.verbose {
		cmd.Stderr = io.MultiWriter(&stderr, os.Stderr)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	b.logf("loadtest %s", strings.Join(argv[5:], " "))
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	l := &load{cmd: cmd, done: make(chan error, 1)}
	var rep loadReport
	decErr := json.NewDecoder(out).Decode(&rep)
	go func() {
		_, _ = io.Copy(io.Discard, out)
		l.done <- cmd.Wait()
	}()
	if decErr != nil {
		err := <-l.done
		return nil, nil, fmt.Errorf("loadtest: no report (%v, %v): %s", decErr, err, lastLines(stderr.String(), 5))
	}
	return &rep, l, nil
}

// runLoad runs the load tool to its end.
func (b *bench) runLoad(srv *server, args ...string) (*loadReport, error) {
	rep, l, err := b.startLoad(srv, args...)
	if err != nil {
		return nil, err
	}
	if err := <-l.done; err != nil {
		return rep, fmt.Errorf("loadtest: %w", err)
	}
	return rep, rep.check()
}

// stop interrupts a holding load process; it closes its sockets and exits.
func (l *load) stop() {
	_ = l.cmd.Process.Signal(os.Interrupt)
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-l.done:
	case <-t.C:
		_ = l.cmd.Process.Kill()
		<-l.done
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// ---------------------------------------------------------------------------
// Scenarios.

func (b *bench) idleRSS() error {
	srv, err := b.startServer("")
	if err != nil {
		return err
	}
	defer srv.stop()
	time.Sleep(2 * time.Second) // let start-up garbage be collected
	kib, err := rssKiB(srv.pid)
	if err != nil {
		return err
	}
	b.idle = float64(kib) / 1024
	b.add("RSS with no connections", fmt.Sprintf("%.1f MiB", b.idle), fmt.Sprintf("≤ %.0f MiB", targetIdleMiB), "2 s after /up")
	return nil
}

// memory measures RSS per connection at -conns connections, idle or each
// subscribed to its own channel, with as many load processes as the
// open-files cap needs (all but the last hold their sockets open).
func (b *bench) memory(channelPerConn bool) error {
	srv, err := b.startServer("")
	if err != nil {
		return err
	}
	defer srv.stop()
	before, err := rssKiB(srv.pid)
	if err != nil {
		return err
	}
	var holding []*load
	defer func() {
		for _, l := range holding {
			l.stop()
		}
	}()
	opened, chunks := 0, split(b.o.conns)
	for i, n := range chunks {
		last := i == len(chunks)-1
		args := []string{"-conns", strconv.Itoa(n), "-publishes", "0", "-concurrency", "50"}
		if channelPerConn {
			args = append(args, "-subs", strconv.Itoa(n), "-channel-per-conn", "-channel", "c"+strconv.Itoa(i))
		} else {
			args = append(args, "-subs", "0")
		}
		if !last {
			args = append(args, "-settle", "0s", "-hold", "60m")
		} else {
			args = append(args, "-settle", b.o.settle.String())
		}
		rep, l, err := b.startLoad(srv, args...)
		if err != nil {
			return err
		}
		holding = append(holding, l)
		if err := rep.check(); err != nil {
			return err
		}
		opened += rep.ConnsOpened
	}
	after, err := rssKiB(srv.pid)
	if err != nil {
		return err
	}
	per := float64(after-before) / float64(opened)
	procs := len(chunks)
	name := fmt.Sprintf("RSS per idle connection (%d)", opened)
	if channelPerConn {
		name = fmt.Sprintf("RSS per connection, each on its own channel (%d)", opened)
	}
	note := fmt.Sprintf("(RSS after %v settle − before) ÷ sockets; %d load process(es)", b.o.settle, procs)
	if !channelPerConn {
		base := b.idle
		if base == 0 {
			base = float64(before) / 1024
		}
		note += fmt.Sprintf("; 100k extrapolated: %.0f MiB", base+per*100000/1024)
	}
	b.add(name, fmt.Sprintf("%.2f KiB", per), fmt.Sprintf("≤ %.1f KiB at 20,000", targetPerConnKiB), note)
	return nil
}

func (b *bench) fanout() error {
	srv, err := b.startServer("")
	if err != nil {
		return err
	}
	defer srv.stop()
	rep, err := b.runLoad(srv, "-conns", strconv.Itoa(b.o.fanoutSubs), "-publishes", strconv.Itoa(b.o.fanoutPublishes),
		"-settle", "1s", "-timeout", "60s")
	if err != nil {
		return err
	}
	shape := fmt.Sprintf("%d subscribers × %d publishes", b.o.fanoutSubs, b.o.fanoutPublishes)
	b.add("server CPU per delivered message (fan-out)", fmt.Sprintf("%.2f µs", rep.CPUPerDelivery),
		fmt.Sprintf("≤ %.2f µs (0.35 × soketi %.1f)", 0.35*soketiCPUPerMsgUs, soketiCPUPerMsgUs),
		fmt.Sprintf("%s; %.2f s CPU ÷ %d deliveries", shape, rep.CPUSeconds, rep.Delivered))
	b.add("delivered/s, fan-out", fmt.Sprintf("%.0fk", rep.DeliveredPerSec/1000), "",
		fmt.Sprintf("%s; p50 %.1f ms, p99 %.1f ms (back to back)", shape, rep.P50, rep.P99))
	return nil
}

func (b *bench) paced() error {
	type run struct {
		subs int
		rate float64
	}
	runs := []run{{b.o.pacedSubs, b.o.pacedRate}}
	if b.o.paced10k {
		runs = append(runs, run{10000, b.o.paced10kRate})
	}
	for _, r := range runs {
		srv, err := b.startServer("")
		if err != nil {
			return err
		}
		n := int(float64(b.o.pacedPublishes) * r.rate / b.o.pacedRate) // the same duration at every rate
		rep, err := b.runLoad(srv, "-conns", strconv.Itoa(r.subs), "-publishes", strconv.Itoa(max(n, 10)),
			"-rate", strconv.FormatFloat(r.rate, 'g', -1, 64), "-settle", "2s", "-timeout", "30s")
		srv.stop()
		if err != nil {
			return err
		}
		target := ""
		if r.subs == 1000 && r.rate == 50 {
			target = fmt.Sprintf("p99 ≤ %.1f ms (0.6 × soketi %.1f)", 0.6*soketiPacedP99Ms, soketiPacedP99Ms)
		}
		b.add(fmt.Sprintf("paced %g/s to %d subscribers, publish→delivery", r.rate, r.subs),
			fmt.Sprintf("p50 %.2f ms, p99 %.2f ms", rep.P50, rep.P99), target,
			fmt.Sprintf("%d publishes, max %.1f ms, server CPU %.2f µs per delivery", rep.PublishesOK, rep.Max, rep.CPUPerDelivery))
	}
	return nil
}

func (b *bench) httpRate() error {
	srv, err := b.startServer("")
	if err != nil {
		return err
	}
	defer srv.stop()
	rep, err := b.runLoad(srv, "-conns", strconv.Itoa(b.o.httpSubs), "-publishes", strconv.Itoa(b.o.httpPublishes),
		"-publishers", strconv.Itoa(b.o.httpPublishers), "-settle", "1s", "-timeout", "30s")
	if err != nil {
		return err
	}
	b.add(fmt.Sprintf("signed POST /events per second (%d subscribers)", b.o.httpSubs),
		fmt.Sprintf("%.0f", rep.PublishesPerSec), fmt.Sprintf("≥ %d", targetHTTPPerSec),
		fmt.Sprintf("%d keep-alive connections, %d publishes; server CPU %.1f µs per publish",
			b.o.httpPublishers, rep.PublishesOK, rep.CPUSeconds*1e6/float64(max(rep.PublishesOK, 1))))
	return nil
}

// startup times exec → first 200 of /up with -apps apps in the store. The
// store is filled once with the CLI (sockudo apps create, no server
// running), served once, and copied for each start.
func (b *bench) startup() error {
	seed, err := os.MkdirTemp("", "sockudo-bench-apps-")
	if err != nil {
		return err
	}
	defer func() {
		if !b.o.keep {
			os.RemoveAll(seed)
		}
	}()
	db := filepath.Join(seed, "sockudo.db")
	t0 := time.Now()
	for i := 0; i < b.o.apps; i++ {
		cmd := exec.Command(b.o.bin, "apps", "create", "--id", fmt.Sprintf("bench-%d", i),
			"--key", fmt.Sprintf("bench-key-%d", i), "--secret", fmt.Sprintf("bench-secret-%d", i))
		cmd.Env = append(os.Environ(), "SOCKUDO_DB_PATH="+db, "LOG_LEVEL=warn")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apps create %d: %v: %s", i, err, lastLines(string(out), 3))
		}
	}
	b.logf("created %d apps with the CLI in %v", b.o.apps, time.Since(t0).Round(time.Millisecond))
	// One server run on the store first, so each timed start finds it as
	// a restart does: the default app stored, nothing to write before /up
	// (a first start writes the default app, two fdatasyncs).
	first, err := b.startServer(seed)
	if err != nil {
		return err
	}
	first.keep = true
	first.stop()
	content, err := os.ReadFile(db)
	if err != nil {
		return err
	}
	var ms []float64
	for r := 0; r < b.o.startupRuns; r++ {
		dir, err := os.MkdirTemp("", "sockudo-bench-")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "sockudo.db"), content, 0o600); err != nil {
			return err
		}
		srv, err := b.startServer(dir)
		if err != nil {
			return err
		}
		ms = append(ms, float64(srv.ready.Microseconds())/1000)
		srv.stop()
	}
	sort.Float64s(ms)
	// The same with an empty store, to tell the apps' share from the rest.
	var empty []float64
	for r := 0; r < b.o.startupRuns; r++ {
		srv, err := b.startServer("")
		if err != nil {
			return err
		}
		empty = append(empty, float64(srv.ready.Microseconds())/1000)
		srv.stop()
	}
	sort.Float64s(empty)
	b.add(fmt.Sprintf("startup to /up with %d apps", b.o.apps), fmt.Sprintf("%.1f ms", ms[len(ms)/2]),
		fmt.Sprintf("≤ %d ms", targetStartupMs),
		fmt.Sprintf("median of %d (%.1f–%.1f), exec to first 200, polled every 1 ms, a store served once before; empty store: %.1f ms",
			len(ms), ms[0], ms[len(ms)-1], empty[len(empty)/2]))
	return nil
}

func (b *bench) size() error {
	out := filepath.Join(os.TempDir(), fmt.Sprintf("sockudo-stripped-%d", os.Getpid()))
	defer os.Remove(out)
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", out, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	mib := float64(st.Size()) / (1 << 20)
	b.add("stripped binary", fmt.Sprintf("%.1f MiB", mib), fmt.Sprintf("≤ %.0f MiB", targetBinaryMiB),
		`go build -ldflags="-s -w", `+runtime.GOOS+"/"+runtime.GOARCH)
	return nil
}

func (b *bench) add(figure, value, target, note string) {
	b.rows = append(b.rows, row{figure, value, target, note})
	b.logf("%s: %s", figure, value)
}

// ---------------------------------------------------------------------------
// The table.

func (b *bench) print(w io.Writer) {
	fmt.Fprintf(w, "machine: %s, %d CPUs, %s, %s; server on CPU %q, load on CPU %q\n\n",
		cpuModel(), runtime.NumCPU(), kernel(), runtime.Version(), b.o.serverCPU, b.o.loadCPU)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "| figure\t| value\t| target\t| note\t|")
	fmt.Fprintln(tw, "|---\t|---\t|---\t|---\t|")
	for _, r := range b.rows {
		fmt.Fprintf(tw, "| %s\t| %s\t| %s\t| %s\t|\n", r.figure, r.value, r.target, r.note)
	}
	tw.Flush()
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return runtime.GOOS
	}
	return "Linux " + strings.TrimSpace(string(b))
}
