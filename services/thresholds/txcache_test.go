package thresholds

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"

	"github.com/simtrail/simtrail/pkg/projection"
	"github.com/simtrail/simtrail/pkg/projection/projtest"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

// dumpTables renders every read-model table in primary-key order.
func dumpTables(t testing.TB, db *sql.DB) string {
	t.Helper()
	return projtest.Dump(t, db,
		`SELECT * FROM sim_state ORDER BY iccid`,
		`SELECT * FROM pool_state ORDER BY pool_id`,
		`SELECT * FROM period ORDER BY subject_type, subject_key, period_key`,
		`SELECT * FROM level ORDER BY subject_type, subject_key, period_key, level`,
		`SELECT * FROM snapshot ORDER BY subject_type, subject_key, period_key, at, event_id`,
		`SELECT * FROM alert ORDER BY subject_type, subject_key, at, event_id`,
		`SELECT alert_id, subject_type, subject_key, provider, period_key, level, source, crossed_at, used, allowed, cause_seq, cause_event_id FROM outbox ORDER BY alert_id`,
	)
}

// TestTxCacheSavepointRollback: events that fail half-way through Apply
// (after their period, level and outbox writes) are rolled back to their
// savepoint and poisoned; the rows Apply remembers for the transaction
// must not outlive that rollback. The model must equal one built from the
// other events alone.
func TestTxCacheSavepointRollback(t *testing.T) {
	evs := genEvents(5, 12, 120)
	bad := func(ev *simtrailv1.Event) bool {
		r := ev.GetThreshold().GetRule()
		return r != nil && r.GetId() == "rule-1"
	}
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)

	p := newProjector(t, genOptions())
	got := openDB(t, p)
	if _, err := got.Writer.Exec(`CREATE TRIGGER boom BEFORE INSERT ON alert WHEN NEW.rule_id = 'rule-1'
		BEGIN SELECT RAISE(ABORT, 'boom'); END`); err != nil {
		t.Fatal(err)
	}
	q := newProjector(t, genOptions())
	want := openDB(t, q)
	nbad := 0
	for i := 0; i < len(evs); i += 250 {
		end := min(i+250, len(evs))
		var all, good []projection.Message
		for j := i; j < end; j++ {
			m := projection.Message{Seq: uint64(j + 1), Subject: "simtrail.events.x", Event: evs[j]}
			all = append(all, m)
			if bad(evs[j]) {
				nbad++
			} else {
				good = append(good, m)
			}
		}
		res, err := projection.ApplyBatch(ctx, got.Writer, p, all, 1, log)
		if err != nil {
			t.Fatal(err)
		}
		if res.Poisoned != len(all)-len(good) {
			t.Fatalf("batch %d: %d poisoned, want %d", i, res.Poisoned, len(all)-len(good))
		}
		if _, err := projection.ApplyBatch(ctx, want.Writer, q, good, 1, log); err != nil {
			t.Fatal(err)
		}
	}
	if nbad == 0 {
		t.Fatal("no failing events generated")
	}
	g, w := dumpTables(t, got.Reader), dumpTables(t, want.Reader)
	if g != w {
		t.Fatalf("model after savepoint rollbacks differs from the model without the failed events (%d failed)", nbad)
	}
	t.Logf("%d events failed and were rolled back; %d bytes of model equal", nbad, len(g))
}
