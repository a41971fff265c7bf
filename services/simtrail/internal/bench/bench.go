// Package bench is `simtrail bench`: it measures simtrail against the
// quality bars of SPEC §9 in one run on one machine, starting everything it
// needs in this process (embedded JetStream, SQLite files in a temporary
// directory, HTTP on 127.0.0.1 random ports) and printing one table.
//
// Phases: ingest (durable webhooks/s vs a bare echo handler under the same
// load generator), fill (one million events published straight to the
// stream), rebuild (events/s of projection.Build per projection vs plain
// batched SQLite inserts of the same rows), queries (31-day usage and fleet
// threshold queries, 50 clients) and freshness (webhook 2xx to visible in
// each read model at a steady rate). Memory is sampled throughout.
//
// Benchmarks are measurements, not tests: nothing here asserts a speed.
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/procfs"

	"github.com/simtrail/simtrail/services/simtrail/internal/app"
	"github.com/simtrail/simtrail/services/simtrail/internal/loadgen"
)

// Options size the run. Zero values take the defaults of `make bench`.
type Options struct {
	// Events stored for the rebuild and query phases (default 1,000,000).
	Events int
	// Sims is the fleet size (default 10,000).
	Sims int
	// Seed of the generated traffic.
	Seed uint64
	// Concurrency of the ingest load (default 64 keep-alive connections).
	Concurrency int
	// IngestDuration is each of the two ingest runs (default 10 s).
	IngestDuration time.Duration
	// QueryClients and QueryDuration drive each query kind (50, 5 s).
	QueryClients  int
	QueryDuration time.Duration
	// QueryPacedRate is the total rate of the paced usage row, which
	// shows the query's latency below saturation (default 10,000/s).
	QueryPacedRate float64
	// FreshRate and FreshDuration drive the freshness phase (1000/s, 10 s).
	FreshRate     float64
	FreshDuration time.Duration
	// Dir holds the temporary data (default: a new directory under the
	// system temp dir, removed afterwards).
	Dir string
	// Phases limits the run to these phase names (ingest, rebuild, queries,
	// freshness); rebuild also fills the stream queries and freshness use.
	// Empty runs all.
	Phases []string
	// Log receives progress lines and bars (default io.Discard).
	Log io.Writer
	// Logger is the services' logger (default: warnings to Log).
	Logger *slog.Logger
	// Bar draws progress bars on Log.
	Bar bool
	// ProfileDir, when set, receives a CPU profile per phase
	// (<phase>.cpu.pprof) and the heap as each phase starts and ends
	// (<phase>.start.heap.pprof, <phase>.end.heap.pprof), for `go tool pprof`.
	ProfileDir string
	// Reuse: when Dir holds a store a run filled and rebuilt today with the
	// same Events, Sims and Seed, and the rebuild phase is not selected,
	// the serving phases run over it without filling and rebuilding again.
	Reuse bool
}

func (o *Options) defaults() {
	if o.Events <= 0 {
		o.Events = 1_000_000
	}
	if o.Sims <= 0 {
		o.Sims = 10_000
	}
	if o.Seed == 0 {
		o.Seed = 42
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.IngestDuration <= 0 {
		o.IngestDuration = 10 * time.Second
	}
	if o.QueryClients <= 0 {
		o.QueryClients = 50
	}
	if o.QueryDuration <= 0 {
		o.QueryDuration = 5 * time.Second
	}
	if o.QueryPacedRate <= 0 {
		o.QueryPacedRate = 10_000
	}
	if o.FreshRate <= 0 {
		o.FreshRate = 1000
	}
	if o.FreshDuration <= 0 {
		o.FreshDuration = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if _, ok := o.Log.(*lockedWriter); !ok {
		// Progress lines, bars and the services' logger share it.
		o.Log = &lockedWriter{w: o.Log}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(o.Log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
}

func (o *Options) want(phase string) bool {
	if len(o.Phases) == 0 {
		return true
	}
	for _, p := range o.Phases {
		if p == phase {
			return true
		}
	}
	return false
}

// Result holds every figure of a run.
type Result struct {
	Machine Machine
	Opts    Options
	Started time.Time
	Took    time.Duration

	Ingest    *IngestResult
	Rebuild   *RebuildResult
	Queries   []QueryResult
	Freshness []FreshnessResult
	Phases    []PhaseUsage // per phase: peak RSS sampled, CPU
	PeakRSS   int64        // VmHWM at the end, bytes
}

// Machine describes where the run happened.
type Machine struct {
	CPUs     int
	CPUModel string
	Go       string
	Commit   string
}

// Run executes the selected phases and returns their figures.
func Run(ctx context.Context, o Options) (*Result, error) {
	o.defaults()
	res := &Result{Machine: DescribeMachine(), Opts: o, Started: time.Now()}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "simtrail-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	sampler := startPhaseSampler(o.ProfileDir)
	defer sampler.stop()

	if o.want("ingest") {
		r, err := benchIngest(ctx, o, dir, sampler)
		if err != nil {
			return res, fmt.Errorf("ingest phase: %w", err)
		}
		res.Ingest = r
	}
	needStore := o.want("rebuild") || o.want("queries") || o.want("freshness")
	storeDir := dirJoin(dir, "store")
	if needStore && o.Reuse && !o.want("rebuild") && storeReusable(storeDir, o) {
		fmt.Fprintf(o.Log, "reusing the filled and rebuilt store in %s\n", storeDir)
	} else if needStore {
		sampler.phase("fill")
		r, err := benchRebuild(ctx, o, storeDir, sampler)
		if err != nil {
			return res, fmt.Errorf("rebuild phase: %w", err)
		}
		res.Rebuild = r
		if err := markStore(storeDir, o); err != nil {
			return res, err
		}
	}
	if o.want("queries") || o.want("freshness") {
		settle()
		sampler.phase("queries")
		q, f, err := benchServing(ctx, o, storeDir, sampler)
		if err != nil {
			return res, fmt.Errorf("serving phases: %w", err)
		}
		res.Queries, res.Freshness = q, f
	}
	sampler.stop()
	res.Phases = sampler.result()
	res.PeakRSS = readStatus("VmHWM")
	res.Took = time.Since(res.Started)
	return res, nil
}

// settle lets the machine finish what earlier phases left running before a
// latency measurement: the gigabytes a fill and the rebuilds wrote sit in
// the kernel's dirty pages, and their writeback (seconds of kernel CPU on a
// 2-core machine) would otherwise land in the query phase; their garbage
// would be marked by its GC cycles.
func settle() {
	syscall.Sync()
	runtime.GC()
	debug.FreeOSMemory()
}

func dirJoin(a, b string) string { return strings.TrimRight(a, "/") + "/" + b }

// storeMark names what a finished fill and rebuild left in a store
// directory. The generated provider times are relative to the day of the
// fill (the query window is too), so a store is reusable on that day only.
func storeMark(o Options) string {
	return fmt.Sprintf("events=%d sims=%d seed=%d day=%s\n", o.Events, o.Sims, o.Seed, time.Now().UTC().Format(time.DateOnly))
}

const storeMarkFile = "bench-store"

func markStore(dir string, o Options) error {
	return os.WriteFile(dirJoin(dir, storeMarkFile), []byte(storeMark(o)), 0o644)
}

func storeReusable(dir string, o Options) bool {
	b, err := os.ReadFile(dirJoin(dir, storeMarkFile))
	return err == nil && string(b) == storeMark(o)
}

// startSystem starts an app and serves it until the returned stop is
// called.
func startSystem(ctx context.Context, cfg app.Config) (*app.App, func() error, error) {
	cfg.Embedded = true
	cfg.EmbeddedHost = "127.0.0.1"
	cfg.EmbeddedPort = -1
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.ManageStream = true
	a, err := app.Start(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(rctx) }()
	stop := func() error {
		cancel()
		return <-done
	}
	// Ready when /readyz answers 200 (NATS connected, databases answer).
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + a.Addr() + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a, stop, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = stop()
			return nil, nil, errors.New("system not ready within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DescribeMachine reads the CPU count and model, the Go version and the git
// commit of the working directory.
func DescribeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH, CPUModel: "unknown", Commit: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
			m.Commit += "+dirty"
		}
	}
	return m
}

// readStatus returns a /proc/self/status memory field in bytes (0 when the
// file is not there, as outside Linux).
func readStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != field {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		return n * 1024
	}
	return 0
}

// PhaseUsage is the largest VmRSS sampled during a phase, and the CPU
// the phase had: what this process used, and what the host took from the
// guest (a figure from a phase the host starved is not this code's).
type PhaseUsage struct {
	Phase  string
	MaxRSS int64
	CPU    PhaseCPU
}

// PhaseCPU is the CPU time of one phase.
type PhaseCPU struct {
	Wall time.Duration
	// Process: user + system time of this process.
	Process time.Duration
	// StealPercent: the share of the machine's CPU time that the
	// hypervisor gave to others (/proc/stat "steal"); -1 when unknown.
	StealPercent float64
}

// Cores is the process's CPU time over the wall time.
func (c PhaseCPU) Cores() float64 {
	if c.Wall <= 0 {
		return 0
	}
	return c.Process.Seconds() / c.Wall.Seconds()
}

// cpuMark is what CPU accounting reads at a phase boundary: this process's
// CPU time, and the machine's stolen and total CPU seconds (/proc/stat).
type cpuMark struct {
	at            time.Time
	process       time.Duration
	steal, total  float64
	stealReadable bool
}

func readCPUMark() cpuMark {
	m := cpuMark{at: time.Now()}
	// getrusage, not /proc/self/stat: microseconds, where the kernel's
	// clock ticks (10 ms) would round a short phase to nothing.
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		m.process = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if fs, err := procfs.NewDefaultFS(); err == nil {
		if st, err := fs.Stat(); err == nil {
			c := st.CPUTotal // guest time is already inside User
			m.steal = c.Steal
			m.total = c.User + c.Nice + c.System + c.Idle + c.Iowait + c.IRQ + c.SoftIRQ + c.Steal
			m.stealReadable = true
		}
	}
	return m
}

// cpuSpent is what a phase used between marks, summed over its entries.
type cpuSpent struct {
	wall, process time.Duration
	steal, total  float64
	stealUnknown  bool
}

func (c *cpuSpent) add(a, b cpuMark) {
	c.wall += b.at.Sub(a.at)
	c.process += b.process - a.process
	if !a.stealReadable || !b.stealReadable {
		c.stealUnknown = true
		return
	}
	c.steal += b.steal - a.steal
	c.total += b.total - a.total
}

func (c cpuSpent) figures() PhaseCPU {
	p := PhaseCPU{Wall: c.wall, Process: c.process, StealPercent: -1}
	if !c.stealUnknown && c.total > 0 {
		p.StealPercent = 100 * c.steal / c.total
	}
	return p
}

// phaseSampler samples VmRSS every 100 ms and attributes it to the current
// phase. The kernel's high-water mark (VmHWM) cannot be reset per phase, so
// per-phase figures are sampled maxima.
type phaseSampler struct {
	mu     sync.Mutex
	cur    string
	order  []string
	max    map[string]int64
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	active atomic.Bool

	// mark: CPU accounting at the start of the current phase; cpu: what
	// each phase used.
	mark cpuMark
	cpu  map[string]cpuSpent

	profileDir string
	// profileBase: <profileDir>/<phase> of the current phase; profile:
	// its CPU profile.
	profileBase string
	profile     *os.File
}

func startPhaseSampler(profileDir string) *phaseSampler {
	m := &phaseSampler{max: map[string]int64{}, cpu: map[string]cpuSpent{}, done: make(chan struct{}), profileDir: profileDir}
	m.active.Store(true)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.done:
				m.sample()
				return
			case <-t.C:
				m.sample()
			}
		}
	}()
	return m
}

func (m *phaseSampler) sample() {
	rss := readStatus("VmRSS")
	m.mu.Lock()
	if m.cur != "" && rss > m.max[m.cur] {
		m.max[m.cur] = rss
	}
	m.mu.Unlock()
}

func (m *phaseSampler) phase(name string) {
	m.sample() // the end of the previous phase belongs to it
	m.mu.Lock()
	defer m.mu.Unlock()
	m.switchProfile(name)
	m.endCPU()
	m.cur = name
	if _, ok := m.max[name]; !ok {
		m.order = append(m.order, name)
		m.max[name] = 0
	}
}

// endCPU closes the current phase's CPU accounting and starts the next
// one's. m.mu is held.
func (m *phaseSampler) endCPU() {
	now := readCPUMark()
	if m.cur != "" {
		c := m.cpu[m.cur]
		c.add(m.mark, now)
		m.cpu[m.cur] = c
	}
	m.mark = now
}

// switchProfile ends the previous phase's CPU profile and starts name's.
func (m *phaseSampler) switchProfile(name string) {
	if m.profileDir == "" {
		return
	}
	if m.profileBase != "" {
		// What the ending phase held live at its last GC.
		writeHeapProfile(m.profileBase + ".end.heap.pprof")
		m.profileBase = ""
	}
	if m.profile != nil {
		pprof.StopCPUProfile()
		m.profile.Close()
		m.profile = nil
	}
	if name == "" {
		return
	}
	m.profileBase = filepath.Join(m.profileDir, strings.ReplaceAll(name, " ", "-"))
	// What earlier phases left for this one's GC cycles to mark.
	writeHeapProfile(m.profileBase + ".start.heap.pprof")
	f, err := os.Create(m.profileBase + ".cpu.pprof")
	if err != nil {
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return
	}
	m.profile = f
}

// writeHeapProfile writes the heap as of the last GC; a failure only costs
// the profile.
func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	pprof.Lookup("heap").WriteTo(f, 0) //nolint:errcheck // a diagnostic
}

func (m *phaseSampler) stop() {
	m.once.Do(func() {
		m.mu.Lock()
		m.switchProfile("")
		m.endCPU()
		m.mu.Unlock()
		close(m.done)
		m.wg.Wait()
	})
}

func (m *phaseSampler) result() []PhaseUsage {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PhaseUsage, 0, len(m.order))
	for _, p := range m.order {
		out = append(out, PhaseUsage{Phase: p, MaxRSS: m.max[p], CPU: m.cpu[p].figures()})
	}
	return out
}

// fleetClient is the freshness pollers' transport (the query phase uses
// rawClient).
func fleetClient(n int) *http.Client { return loadgen.NewClient(n) }

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
