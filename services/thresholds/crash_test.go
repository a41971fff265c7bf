package thresholds

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/httpx"
	"github.com/simtrail/simtrail/pkg/natstest"
	"github.com/simtrail/simtrail/pkg/projection"
	"github.com/simtrail/simtrail/pkg/projection/projtest"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

func TestMain(m *testing.M) { projtest.Main(m, serveChild) }

// serveChild is the process the crash test kills: runner, outbox publisher
// and query API, wired like the simtrail command, over the NATS server and
// DB file it is given.
func serveChild(ctx context.Context, js jetstream.JetStream, dbPath string) (http.Handler, error) {
	p, err := NewProjector(genOptions())
	if err != nil {
		return nil, err
	}
	db, err := projection.Open(ctx, dbPath, p.Migrations())
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.DiscardHandler)
	var pub *Publisher
	// Small batches: more commits, so more kills land between and inside them.
	r, err := projection.NewRunner(ctx, p, db, js, projection.Config{Durable: "thresholds-crash", BatchSize: 50, Logger: log,
		AfterCommit: func(uint64) { pub.Notify() }})
	if err != nil {
		return nil, err
	}
	pub = NewPublisher(r, js, log)
	go func() { _ = r.Run(ctx) }()
	go func() { _ = pub.Run(ctx) }()
	e := httpx.NewEcho(log)
	Routes(e, r)
	e.GET("/v1/projections", projection.ProjectionsHandler(r))
	return e, nil
}

// snapshotAPI fetches every endpoint for every SIM and pool, and the fleet
// view under several filters, page by page.
func snapshotAPI(t *testing.T, base string, iccids, pools []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	get := func(path string) string {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	for _, id := range iccids {
		out["sim "+id] = get("/v1/sims/" + id + "/thresholds")
	}
	for _, id := range pools {
		out["pool "+id] = get("/v1/pools/" + id)
	}
	for _, q := range []string{"", "min_percent=50&", "min_percent=0&", "provider=droam&", "provider=truphone&", "status=active&", "status=suspended&"} {
		cursor := ""
		for page := 0; ; page++ {
			body := get("/v1/thresholds?" + q + "limit=7" + cursor)
			out[fmt.Sprintf("fleet %s page %d", q, page)] = body
			var fv FleetView
			if err := json.Unmarshal([]byte(body[4:]), &fv); err != nil {
				t.Fatalf("fleet %s: %v", q, err)
			}
			if fv.NextCursor == nil {
				break
			}
			cursor = "&cursor=" + *fv.NextCursor
		}
	}
	return out
}

// TestCrashRecovery streams generated events (shuffled, ~10 % stored
// twice) while SIGKILLing and restarting the projector process at random
// points, then compares every endpoint with a clean rebuild and checks each
// derived alert was published exactly once.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped with -short")
	}
	const nSIMs, perSIM, kills = 30, 100, 8
	rng := rand.New(rand.NewPCG(2026, 4))
	evs := genEvents(4, nSIMs, perSIM)
	rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	type item struct {
		ev     *simtrailv1.Event
		withID bool
	}
	var plan []item
	for _, ev := range evs {
		plan = append(plan, item{ev, true})
	}
	for range len(evs) / 10 {
		i := rng.IntN(len(plan) - 1)
		dup := item{evs[rng.IntN(len(evs))], false}
		plan = append(plan[:i+1], append([]item{dup}, plan[i+1:]...)...)
	}
	iccidSet := map[string]bool{}
	for _, ev := range evs {
		if ev.GetIccid() != "" {
			iccidSet[ev.GetIccid()] = true
		}
	}
	var iccids []string
	for id := range iccidSet {
		iccids = append(iccids, id)
	}
	slices.Sort(iccids)

	s := natstest.Run(t)
	s.Stream(t)
	_, js := s.Conn(t)
	dbPath := filepath.Join(t.TempDir(), "thresholds.db")

	lastSeq := make(chan uint64, 1)
	var streaming atomic.Bool
	streaming.Store(true)
	go func() {
		defer streaming.Store(false)
		var last uint64
		for i, it := range plan {
			last = publishEvents(t, js, []*simtrailv1.Event{it.ev}, it.withID)
			if i%50 == 49 {
				time.Sleep(20 * time.Millisecond) // pace the stream so kills land while it flows
			}
		}
		lastSeq <- last
	}()

	// Kill at random positions while the stream flows.
	approx := uint64(len(plan))
	targets := make([]uint64, kills)
	for i := range targets {
		targets[i] = 1 + rng.Uint64N(approx)
	}
	slices.Sort(targets)
	midStream := 0
	for i, target := range targets {
		c := projtest.Start(t, s.URL(), dbPath)
		if !c.WaitPosition(target, 30*time.Second) {
			t.Fatalf("kill %d: child did not reach %d", i, target)
		}
		if streaming.Load() {
			midStream++
		}
		c.Kill()
	}
	last := <-lastSeq
	c := projtest.Start(t, s.URL(), dbPath)
	if !c.WaitPosition(last, 30*time.Second) {
		t.Fatalf("final child did not reach %d", last)
	}
	// Wait for the outbox of the killed-and-restarted model to drain.
	ro, err := sql.Open("sqlite3", "file:"+dbPath+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows, err := pending(context.Background(), ro)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox still has %d pending rows", len(rows))
		}
		time.Sleep(10 * time.Millisecond) // poll interval only
	}
	got := snapshotAPI(t, c.URL, iccids, append(slices.Clone(genPools), "no-such-pool"))

	// Clean rebuild from sequence 1 into a fresh file.
	ctx := context.Background()
	p := newProjector(t, genOptions())
	fresh := openDB(t, p)
	pos, err := projection.Build(ctx, js, events.StreamName, p, fresh, projection.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pos != last {
		t.Fatalf("rebuild reached %d, want %d", pos, last)
	}
	r, err := projection.NewRunner(ctx, p, fresh, js, projection.Config{Durable: "thresholds-rebuild-check"})
	if err != nil {
		t.Fatal(err)
	}
	e := httpx.NewEcho(slog.New(slog.DiscardHandler))
	Routes(e, r)
	srv := httptest.NewServer(e)
	defer srv.Close()
	want := snapshotAPI(t, srv.URL, iccids, append(slices.Clone(genPools), "no-such-pool"))
	if len(got) != len(want) {
		t.Errorf("%d answers after crashes, %d from the rebuild", len(got), len(want))
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s differs after crashes:\n got %s\nwant %s", k, got[k], w)
		}
	}

	// Every crossing of the clean model was published exactly once.
	expected := outboxRows(t, fresh.Reader)
	alerts := readAlerts(t, js)
	seen := map[string]int{}
	for _, a := range alerts {
		seen[alertKey(a)]++
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("alert %s published %d times", k, n)
		}
	}
	for k := range expected {
		if seen[k] != 1 {
			t.Errorf("crossing %s published %d times", k, seen[k])
		}
	}
	if len(seen) != len(expected) {
		t.Errorf("%d distinct alerts published, %d crossings in the clean model", len(seen), len(expected))
	}
	t.Logf("%d events (last sequence %d), %d kills (%d while events were streaming in), %d SIMs, %d alerts",
		len(evs), last, kills, midStream, len(iccids), len(alerts))
}
