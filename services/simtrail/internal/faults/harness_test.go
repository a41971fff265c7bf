package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"github.com/simtrail/simtrail/services/ingest/providers"
)

// roamifySecret is the secret every ingest process of the suite is given.
const roamifySecret = "faults-roamify-secret"

var (
	enabled     = os.Getenv("FAULTS") == "1"
	shortMode   = os.Getenv("FAULTS_SHORT") == "1"
	simtrailBin string
	natsBin     string
	results     resultTable
)

// TestMain builds the real binaries once: bin/simtrail from this module and
// nats-server from the module version the workspace requires.
func TestMain(m *testing.M) {
	if !enabled {
		os.Exit(m.Run())
	}
	tmp, err := os.MkdirTemp("", "simtrail-faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	code := func() int {
		if simtrailBin, err = binary(tmp, "FAULTS_SIMTRAIL_BIN", "simtrail", "."); err != nil {
			fmt.Fprintln(os.Stderr, "faults: build simtrail:", err)
			return 1
		}
		if natsBin, err = binary(tmp, "FAULTS_NATS_BIN", "nats-server", "github.com/nats-io/nats-server/v2"); err != nil {
			fmt.Fprintln(os.Stderr, "faults: build nats-server:", err)
			return 1
		}
		return m.Run()
	}()
	results.print(os.Stdout)
	if p := os.Getenv("FAULTS_REPORT"); p != "" {
		f, err := os.Create(p)
		if err == nil {
			results.print(f)
			f.Close()
		}
	}
	os.RemoveAll(tmp)
	os.Exit(code)
}

// binary returns a prebuilt binary named by env, or builds pkg (relative to
// the simtrail module root, so the workspace's versions are used).
func binary(dir, env, name, pkg string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, b)
	}
	return out, nil
}

func needFaults(t *testing.T) {
	t.Helper()
	if !enabled {
		t.Skip("fault-injection suite: run with FAULTS=1 (make faults)")
	}
}

// pick returns long unless FAULTS_SHORT=1.
func pick(short, long int) int {
	if shortMode {
		return short
	}
	return long
}

// ---- processes -------------------------------------------------------

// logBuf keeps a process's output (bounded) for log assertions and for the
// failure dump.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const logCap = 16 << 20

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() < logCap {
		l.buf.Write(p)
	}
	return len(p), nil
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// proc is one child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *logBuf
	done chan struct{}
	err  error
}

// startProc starts bin and registers its SIGKILL in t.Cleanup.
func startProc(t *testing.T, name, bin string, args []string, env ...string) *proc {
	t.Helper()
	p := &proc{name: name, log: &logBuf{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			s := p.log.String()
			if len(s) > 4000 {
				s = "…" + s[len(s)-4000:]
			}
			t.Logf("---- %s (pid %d) output tail ----\n%s", name, p.cmd.Process.Pid, s)
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// waitLog polls the process output for re until timeout; it returns the
// first submatch group (or the whole match).
func (p *proc) waitLog(t *testing.T, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(p.log.String()); m != nil {
			return m[len(m)-1]
		}
		if p.exited() {
			t.Fatalf("%s exited (%v) before logging %q:\n%s", p.name, p.err, re, tail(p.log.String(), 3000))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within %s:\n%s", p.name, re, timeout, tail(p.log.String(), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// rssKB reads VmRSS and VmHWM (peak) of pid in KiB.
func rssKB(pid int) (rss, peak int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			peak = v
		}
	}
	return rss, peak
}

// freePort asks the kernel for an unused loopback port. NATS needs its port
// before it starts (and again on restart), so it cannot use :0 itself.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// eventually polls f until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- NATS ------------------------------------------------------------

// natsNode is one nats-server with a fixed port and store, restartable.
type natsNode struct {
	name, conf, store string
	port, clusterPort int
	p                 *proc
}

type natsOpts struct {
	syncAlways bool
	// maxStore, when set, is JetStream's max_file_store (bytes).
	maxStore int64
}

// newNATSCluster writes the configs of n nodes (n = 1: no cluster block).
func newNATSCluster(t *testing.T, n int, o natsOpts) []*natsNode {
	t.Helper()
	dir := t.TempDir()
	nodes := make([]*natsNode, n)
	for i := range nodes {
		nodes[i] = &natsNode{name: fmt.Sprintf("n%d", i+1), port: freePort(t), clusterPort: freePort(t),
			store: filepath.Join(dir, fmt.Sprintf("n%d", i+1))}
	}
	for _, nd := range nodes {
		var b strings.Builder
		fmt.Fprintf(&b, "server_name: %s\nlisten: 127.0.0.1:%d\n", nd.name, nd.port)
		fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n", nd.store)
		if o.syncAlways {
			b.WriteString("  sync_interval: always\n")
		}
		if o.maxStore > 0 {
			fmt.Fprintf(&b, "  max_file_store: %d\n", o.maxStore)
		}
		b.WriteString("}\n")
		if n > 1 {
			fmt.Fprintf(&b, "cluster {\n  name: faults\n  listen: 127.0.0.1:%d\n  routes: [\n", nd.clusterPort)
			for _, o := range nodes {
				fmt.Fprintf(&b, "    nats-route://127.0.0.1:%d\n", o.clusterPort)
			}
			b.WriteString("  ]\n}\n")
		}
		nd.conf = filepath.Join(dir, nd.name+".conf")
		if err := os.WriteFile(nd.conf, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

var natsReady = regexp.MustCompile(`Server is ready`)

// start (re)starts the node and waits until it accepts clients.
func (n *natsNode) start(t *testing.T) {
	t.Helper()
	n.p = startProc(t, "nats-server "+n.name, natsBin, []string{"-c", n.conf})
	n.p.waitLog(t, natsReady, 30*time.Second)
}

func (n *natsNode) kill() { n.p.kill() }

func clusterURL(nodes []*natsNode) string {
	var u []string
	for _, n := range nodes {
		u = append(u, n.url())
	}
	return strings.Join(u, ",")
}

// ---- simtrail processes -----------------------------------------------

var listening = regexp.MustCompile(`msg=listening .*?\bhttp=(\S+)`)

// service is a running `simtrail <sub>` process and its base URL.
type service struct {
	*proc
	base string
}

// startService runs `simtrail sub` against natsURL on a random HTTP port.
func startService(t *testing.T, sub, natsURL string, args ...string) *service {
	t.Helper()
	all := append([]string{sub, "--nats-url", natsURL, "--http-addr", "127.0.0.1:0"}, args...)
	p := startProc(t, "simtrail "+sub, simtrailBin, all)
	addr := p.waitLog(t, listening, 60*time.Second)
	return &service{proc: p, base: "http://" + addr}
}

// startIngest runs `simtrail ingest` with Roamify enabled.
func startIngest(t *testing.T, natsURL string, args ...string) *service {
	t.Helper()
	return startService(t, "ingest", natsURL, append([]string{"--roamify-secret", roamifySecret}, args...)...)
}

func newClient(conns int) *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 30 * time.Second,
	}}
}

// status answers the HTTP status of GET url (0 on a transport error).
func status(c *http.Client, url string) int {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func waitReady(t *testing.T, c *http.Client, base string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, base+"/readyz", func() error {
		if s := status(c, base+"/readyz"); s != http.StatusOK {
			return fmt.Errorf("status %d", s)
		}
		return nil
	})
}

// ---- webhooks ----------------------------------------------------------

// iccid returns a distinct 19-digit ICCID for SIM i.
func iccid(i int) string { return fmt.Sprintf("89103000%011d", 7000000+i) }

// usageBody is a Roamify esim/usage webhook; tag makes it unique.
func usageBody(sim string, ts int64, usedMB, allowedMB int, tag string) []byte {
	day := time.Unix(ts, 0).UTC().Format("2006-01-02")
	return fmt.Appendf(nil, `{"event_category":"esim","event_type":"usage","data":{"timestamp":%d,"iccid":%q,`+
		`"esim_id":"5f0c2a9e-7d41-4c8e-9b6a-2e1f3c4d5a60","reference_id":%q,"start":1754817120,"end":1785421920,`+
		`"status":"ACTIVATED","package_id":"esim-france-30days-10gb","package_name":"10 GB - 30 Days",`+
		`"data_units":"MB","voice_units":"minutes","sms_units":"sms","usage_data":{"isUnlimited":false,`+
		`"allowed_data":%d,"remaining_data":%d,"allowed_sms":0,"remaining_sms":0,"allowed_voice":0,"remaining_voice":0},`+
		`"usage_list":[{"date":%q,"data_used":%d,"location":"France"}]}}`,
		ts, sim, tag, allowedMB, max(allowedMB-usedMB, 0), day, usedMB)
}

// uniqueBodies returns n distinct usage webhooks spread over sims SIMs.
func uniqueBodies(n, sims int, run string) [][]byte {
	out := make([][]byte, n)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for i := range out {
		s := i % sims
		k := i / sims
		out[i] = usageBody(iccid(s), base+int64(k)*600, 1+k*3, 10240, fmt.Sprintf("%s-%d", run, i))
	}
	return out
}

func eventID(body []byte) string { return events.ID(simtrailv1.Provider_PROVIDER_ROAMIFY, body) }

// postRoamify signs and posts body; it answers the status (0 on a
// transport error) and the error.
func postRoamify(c *http.Client, base string, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/webhooks/roamify", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Roamify-Signature", providers.SignRoamify(roamifySecret, body))
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// outcome of one webhook delivery.
type outcome struct {
	status  int
	err     error
	latency time.Duration
}

func (o outcome) ok() bool { return o.err == nil && o.status >= 200 && o.status < 300 }

// retryable is what a provider retries: a connection error or a 5xx.
func (o outcome) retryable() bool { return o.err != nil || o.status >= 500 }

// sendAll posts every body once with conc workers, recording each outcome.
// onDone, if set, is called after each request. A worker whose request
// failed backs off 100 ms before its next one, as a provider's sender would.
func sendAll(c *http.Client, base string, bodies [][]byte, conc int, onDone func(i int, o outcome)) []outcome {
	outs := make([]outcome, len(bodies))
	idx := make(chan int)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				start := time.Now()
				st, err := postRoamify(c, base, bodies[i])
				outs[i] = outcome{status: st, err: err, latency: time.Since(start)}
				if onDone != nil {
					onDone(i, outs[i])
				}
				if !outs[i].ok() {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	for i := range bodies {
		idx <- i
	}
	close(idx)
	wg.Wait()
	return outs
}

// resend re-delivers body as a provider would: until a 2xx, at most
// attempts times, pausing between tries.
func resend(c *http.Client, base string, body []byte, attempts int) outcome {
	var o outcome
	for range attempts {
		st, err := postRoamify(c, base, body)
		o = outcome{status: st, err: err}
		if o.ok() {
			return o
		}
		time.Sleep(200 * time.Millisecond) // a provider's retry back-off
	}
	return o
}

func percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), lat...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// ---- the stream ----------------------------------------------------------

// connectJS connects to NATS at url; done closes the connection.
func connectJS(t *testing.T, url string) (js jetstream.JetStream, done func()) {
	t.Helper()
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	if js, err = jetstream.New(nc); err != nil {
		nc.Close()
		t.Fatal(err)
	}
	return js, nc.Close
}

// readStream reads the whole SIMTRAIL stream back and counts messages by
// Nats-Msg-Id; it also answers the last sequence.
func readStream(t *testing.T, url string) (map[string]int, uint64) {
	t.Helper()
	js, done := connectJS(t, url)
	defer done()
	var counts map[string]int
	var last uint64
	// Right after a node was killed a clustered stream may be between
	// leaders, and a JetStream API request may then go unanswered: every
	// attempt gets its own short deadline and a failed read starts over,
	// counting from scratch, until the overall deadline.
	eventually(t, 3*time.Minute, "read the stream back", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ictx, icancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := js.Stream(ictx, events.StreamName)
		icancel()
		if err != nil {
			return fmt.Errorf("stream info: %w", err)
		}
		counts, last, err = readStreamOnce(ctx, st)
		return err
	})
	return counts, last
}

func readStreamOnce(ctx context.Context, st jetstream.Stream) (map[string]int, uint64, error) {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, err := st.Info(ictx)
	cancel()
	if err != nil {
		return nil, 0, err
	}
	last := info.State.LastSeq
	counts := map[string]int{}
	if info.State.Msgs == 0 {
		return counts, last, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, 0, err
	}
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(3*time.Second))
		if err != nil {
			return nil, 0, fmt.Errorf("fetch: %w", err)
		}
		n := 0
		var seq uint64
		for m := range batch.Messages() {
			n++
			md, _ := m.Metadata()
			seq = md.Sequence.Stream
			counts[m.Headers().Get(events.HeaderMsgID)]++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, 0, fmt.Errorf("fetch: %w", err)
		}
		if seq >= last {
			return counts, last, nil
		}
		if n == 0 {
			return nil, 0, fmt.Errorf("stream read stalled before sequence %d", last)
		}
	}
}

// ---- the fault table -------------------------------------------------------

// row is one line of the fault table.
type row struct {
	Scenario                               string
	Sent, OK, Failed, Resent, Stored, Dups int
	Lost                                   int
	Note                                   string
}

// perfRow is one durability measurement.
type perfRow struct {
	Setting       string
	N, Conc       int
	PerSec        float64
	P50, P99, Max time.Duration
}

type resultTable struct {
	mu   sync.Mutex
	rows []row
	perf []perfRow
}

func (r *resultTable) add(x row) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, x)
}

func (r *resultTable) addPerf(x perfRow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.perf = append(r.perf, x)
}

func (r *resultTable) print(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.rows) > 0 {
		fmt.Fprintln(w, "\n| scenario | requests sent | 2xx | failed (503/conn) | re-sent | stored | duplicates | lost | notes |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
		for _, x := range r.rows {
			fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d | %d | %d | %s |\n", x.Scenario, x.Sent, x.OK, x.Failed, x.Resent, x.Stored, x.Dups, x.Lost, x.Note)
		}
	}
	if len(r.perf) > 0 {
		fmt.Fprintln(w, "\n| durability setting | webhooks | clients | webhooks/s | p50 | p99 | max |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
		for _, x := range r.perf {
			fmt.Fprintf(w, "| %s | %d | %d | %.0f | %s | %s | %s |\n", x.Setting, x.N, x.Conc, x.PerSec,
				x.P50.Round(10*time.Microsecond), x.P99.Round(10*time.Microsecond), x.Max.Round(10*time.Microsecond))
		}
	}
}
