package thresholds

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/natstest"
	"github.com/simtrail/simtrail/pkg/projection"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

// BenchmarkProjection applies generated events with projection.ApplyBatch
// in batches of 1000 on a real SQLite file and reports events/s.
func BenchmarkProjection(b *testing.B) {
	evs := genEvents(9, 500, 200) // ~100k events
	p := newProjector(b, genOptions())
	benchFold(b, p, len(evs), func(db *projection.DB) { applyInBatches(b, db, p, evs, 1000) })
}

// benchFold folds n events with fold into a fresh model per iteration and
// reports events/s and the process's CPU time per event.
func benchFold(b *testing.B, p *Projector, n int, fold func(*projection.DB)) {
	var cpu cpuClock
	b.ResetTimer()
	applied := 0
	for range b.N {
		b.StopTimer()
		db := openDB(b, p)
		b.StartTimer()
		cpu.start()
		fold(db)
		cpu.stop()
		applied += n
	}
	b.ReportMetric(float64(applied)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(cpu.since()/float64(applied), "cpu-µs/event")
}

// applyInBatches applies evs with projection.ApplyBatch, size per batch.
func applyInBatches(b *testing.B, db *projection.DB, p *Projector, evs []*simtrailv1.Event, size int) {
	log := slog.New(slog.DiscardHandler)
	for i := 0; i < len(evs); i += size {
		end := min(i+size, len(evs))
		msgs := make([]projection.Message, 0, end-i)
		for j := i; j < end; j++ {
			msgs = append(msgs, projection.Message{Seq: uint64(j + 1), Subject: "simtrail.events.x", Event: evs[j]})
		}
		if _, err := projection.ApplyBatch(context.Background(), db.Writer, p, msgs, 1, log); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuClock measures the process's CPU time (user+system, every thread:
// SQLite, GC, an embedded NATS server) while the benchmark timer runs: on
// a shared machine it varies much less than wall time.
type cpuClock struct{ total, started time.Duration }

func (c *cpuClock) now() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (c *cpuClock) start() { c.started = c.now() }
func (c *cpuClock) stop()  { c.total += c.now() - c.started }

// since is the CPU time measured, in microseconds.
func (c *cpuClock) since() float64 { return float64(c.total) / float64(time.Microsecond) }

// fillFleet inserts n SIM state rows directly (the fleet query reads only
// sim_state), with percentages spread over 0..120 and some unknown.
func fillFleet(tb testing.TB, db *projection.DB, n int) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	tx, err := db.Writer.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	st, err := tx.Prepare(`INSERT INTO sim_state(iccid, provider, status, percent, sort_pct, used, allowed, last_level, as_of)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		tb.Fatal(err)
	}
	provs := []string{"droam", "roamify", "truphone"}
	stats := []string{"active", "active", "active", "suspended", "installed"}
	for i := range n {
		var pct any
		sortPct := -1.0
		if rng.IntN(20) != 0 {
			v := rng.Float64() * 120
			pct, sortPct = v, v
		}
		if _, err := st.Exec(fmt.Sprintf("89%017d", i), provs[i%3], stats[rng.IntN(len(stats))], pct, sortPct,
			rng.Int64N(1<<32), int64(1<<32), nil, int64(1_700_000_000_000_000_000)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.Writer.Exec(`ANALYZE`); err != nil {
		tb.Fatal(err)
	}
}

// TestFleetQueryPlan shows, on 100k SIMs, that every fleet query shape
// walks an index in the requested order (no temporary sort).
func TestFleetQueryPlan(t *testing.T) {
	p := newProjector(t, Options{})
	db := openDB(t, p)
	fillFleet(t, db, 100_000)
	first, err := QueryFleet(context.Background(), db.Reader, FleetQuery{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	cursor := *first.NextCursor
	for _, q := range []FleetQuery{
		{Limit: 50},
		{Limit: 50, MinPercent: ptr(80.0)},
		{Limit: 50, MinPercent: ptr(80.0), Cursor: cursor},
		{Limit: 50, Provider: "droam"},
		{Limit: 50, Status: "suspended", MinPercent: ptr(50.0)},
	} {
		s, args, err := fleetSQL(q)
		if err != nil {
			t.Fatal(err)
		}
		plan := explain(t, db.Reader, s, args)
		if !strings.Contains(plan, "USING INDEX sim_state_") || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("query %+v: plan %q", q, plan)
		}
		t.Logf("%+v: %s", q, plan)
	}
	// Paging through min_percent=100 returns every such SIM once, in order.
	var want int
	if err := db.Reader.QueryRow(`SELECT count(*) FROM sim_state WHERE percent >= 100`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	got, prev, cur := 0, 1e9, ""
	for {
		v, err := QueryFleet(context.Background(), db.Reader, FleetQuery{Limit: 500, MinPercent: ptr(100.0), Cursor: cur})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range v.SIMs {
			if *s.PercentUsed > prev+0.01 {
				t.Fatalf("not sorted: %v after %v", *s.PercentUsed, prev)
			}
			prev = *s.PercentUsed
		}
		got += len(v.SIMs)
		if v.NextCursor == nil {
			break
		}
		cur = *v.NextCursor
	}
	if got != want {
		t.Errorf("paged %d SIMs, want %d", got, want)
	}
}

func ptr[T any](v T) *T { return &v }

func explain(t testing.TB, db *sql.DB, q string, args []any) string {
	rows, err := db.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, detail)
	}
	return strings.Join(parts, "; ")
}

// BenchmarkFleetQuery asks fleet pages over 100k SIMs.
func BenchmarkFleetQuery(b *testing.B) {
	p := newProjector(b, Options{})
	db := openDB(b, p)
	fillFleet(b, db, 100_000)
	ctx := context.Background()
	mid, err := QueryFleet(ctx, db.Reader, FleetQuery{Limit: 500, MinPercent: ptr(50.0)})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		q    FleetQuery
	}{
		{"first_page", FleetQuery{Limit: 50}},
		{"min_percent_80", FleetQuery{Limit: 50, MinPercent: ptr(80.0)}},
		{"cursor_page", FleetQuery{Limit: 50, MinPercent: ptr(50.0), Cursor: *mid.NextCursor}},
		{"provider_status", FleetQuery{Limit: 50, Provider: "truphone", Status: "suspended"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				if _, err := QueryFleet(ctx, db.Reader, bc.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fleetEvents is a fleet-like log: 10k SIMs with ~20 events each (~200k
// events), ordered by provider time, so a SIM's events are spread over
// the whole log (and over many transactions) as they are in a real stream.
func fleetEvents() []*simtrailv1.Event {
	evs := genEvents(11, 10_000, 20)
	slices.SortStableFunc(evs, func(a, b *simtrailv1.Event) int {
		return a.GetOccurredAt().AsTime().Compare(b.GetOccurredAt().AsTime())
	})
	return evs
}

// BenchmarkProjectionFleet applies the fleet log the way projection.Build
// does (bulk mode, the projector's BuildBatchSize events per transaction),
// without JetStream, and reports events/s.
func BenchmarkProjectionFleet(b *testing.B) {
	evs := fleetEvents()
	p := newProjector(b, genOptions())
	benchFold(b, p, len(evs), func(db *projection.DB) {
		if _, err := db.BulkMode(context.Background()); err != nil {
			b.Fatal(err)
		}
		applyInBatches(b, db, p, evs, p.BuildBatchSize())
	})
}

// BenchmarkProjectionBuild rebuilds the fleet log from an embedded
// JetStream with projection.Build (ordered consumer, bulk mode), as
// `simtrail rebuild` does, and reports events/s.
func BenchmarkProjectionBuild(b *testing.B) {
	evs := fleetEvents()
	ns := natstest.Run(b)
	ns.Stream(b)
	_, js := ns.Conn(b)
	ctx := context.Background()
	for i, ev := range evs {
		if _, err := js.PublishMsgAsync(eventMsg(b, ev)); err != nil {
			b.Fatal(err)
		}
		if i%5000 == 4999 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	p := newProjector(b, genOptions())
	benchFold(b, p, len(evs), func(db *projection.DB) {
		pos, err := projection.Build(ctx, js, events.StreamName, p, db, projection.BuildOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if pos != uint64(len(evs)) {
			b.Fatalf("built to %d, want %d", pos, len(evs))
		}
	})
}
