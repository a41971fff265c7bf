package thresholds

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/simtrail/simtrail/pkg/projection"
)

// BenchmarkProjection applies generated events with projection.ApplyBatch
// in batches of 1000 on a real SQLite file and reports events/s.
func BenchmarkProjection(b *testing.B) {
	evs := genEvents(9, 500, 200) // ~100k events
	p := newProjector(b, genOptions())
	log := slog.New(slog.DiscardHandler)
	b.ResetTimer()
	applied := 0
	for range b.N {
		b.StopTimer()
		db := openDB(b, p)
		b.StartTimer()
		for i := 0; i < len(evs); i += 1000 {
			end := min(i+1000, len(evs))
			msgs := make([]projection.Message, 0, end-i)
			for j := i; j < end; j++ {
				msgs = append(msgs, projection.Message{Seq: uint64(j + 1), Subject: "simtrail.events.x", Event: evs[j]})
			}
			if _, err := projection.ApplyBatch(context.Background(), db.Writer, p, msgs, 1, log); err != nil {
				b.Fatal(err)
			}
		}
		applied += len(evs)
	}
	b.ReportMetric(float64(applied)/b.Elapsed().Seconds(), "events/s")
}

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
