package thresholds

import (
	"context"
	"database/sql"
	"log/slog"
	"strconv"
	"testing"

	"github.com/simtrail/simtrail/pkg/projection"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

// batches cuts evs into ApplyBatch messages of n events, sequences from 1.
func batches(evs []*simtrailv1.Event, n int) [][]projection.Message {
	var out [][]projection.Message
	for i := 0; i < len(evs); i += n {
		var b []projection.Message
		for j := i; j < min(i+n, len(evs)); j++ {
			b = append(b, projection.Message{Seq: uint64(j + 1), Subject: "simtrail.events.x", Event: evs[j]})
		}
		out = append(out, b)
	}
	return out
}

// TestRowCacheDroppedOnRollback: a batch whose every Apply succeeds but
// whose transaction then fails (here the checkpoint write) is rolled back;
// the rows the projector remembered from it must go too, or re-applying
// the batch would merge into rows SQLite does not have.
func TestRowCacheDroppedOnRollback(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	evs := genEvents(3, 40, 60)
	p := newProjector(t, genOptions())
	got := openDB(t, p)
	bs := batches(evs, 300)
	failAt := bs[2][len(bs[2])-1].Seq
	for _, trig := range []string{"INSERT", "UPDATE"} {
		if _, err := got.Writer.Exec(`CREATE TRIGGER boom_` + trig + ` BEFORE ` + trig + ` ON projection_checkpoint
			WHEN NEW.last_seq = ` + strconv.FormatUint(failAt, 10) + ` BEGIN SELECT RAISE(ABORT, 'boom'); END`); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range bs {
		_, err := projection.ApplyBatch(ctx, got.Writer, p, b, 1, log)
		if i == 2 {
			if err == nil {
				t.Fatal("batch 2 committed despite the failing checkpoint")
			}
			if _, err := got.Writer.Exec(`DROP TRIGGER boom_INSERT; DROP TRIGGER boom_UPDATE`); err != nil {
				t.Fatal(err)
			}
			_, err = projection.ApplyBatch(ctx, got.Writer, p, b, 1, log)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	want := build(t, genOptions(), evs...)
	if g, w := dumpTables(t, got.Reader), dumpTables(t, want); g != w {
		t.Fatal("model after a rolled-back batch differs from a clean build")
	}
}

// TestRowCacheSeesOtherConnections: rows changed by another connection
// between two batches are read afresh (data_version), not served from
// what the projector remembered.
func TestRowCacheSeesOtherConnections(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	evs := genEvents(4, 40, 60)
	bs := batches(evs, 400)
	const tamper = `DELETE FROM level; DELETE FROM period; UPDATE sim_state SET as_of = NULL, as_of_event = NULL, status_at = NULL`
	run := func(fresh bool) string {
		p := newProjector(t, genOptions())
		db := openDB(t, p)
		for i, b := range bs {
			if fresh {
				p = newProjector(t, genOptions()) // nothing remembered
			}
			if _, err := projection.ApplyBatch(ctx, db.Writer, p, b, 1, log); err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				other, err := sql.Open("sqlite3", "file:"+db.Path+"?_busy_timeout=10000")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := other.Exec(tamper); err != nil {
					t.Fatal(err)
				}
				other.Close()
			}
		}
		return dumpTables(t, db.Reader)
	}
	if run(false) != run(true) {
		t.Fatal("rows written by another connection were not re-read")
	}
}
