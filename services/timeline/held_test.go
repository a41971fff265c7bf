package timeline_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/simtrail/simtrail/pkg/projection"
	"github.com/simtrail/simtrail/pkg/projection/projtest"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"github.com/simtrail/simtrail/services/timeline"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// openModel opens an empty timeline model in a test directory.
func openModel(t *testing.T) (*timeline.Projector, *projection.DB) {
	t.Helper()
	p := timeline.NewProjector()
	db, err := projection.Open(context.Background(), filepath.Join(t.TempDir(), "model.db"), p.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return p, db
}

// dumpModel renders every row of the timeline's tables in key order.
func dumpModel(t *testing.T, db *sql.DB) string {
	t.Helper()
	return projtest.Dump(t, db,
		`SELECT * FROM sim_event ORDER BY id`,
		`SELECT * FROM usage_snapshot ORDER BY iccid, at, event_id`,
		`SELECT * FROM usage_day ORDER BY iccid, day`,
		`SELECT * FROM daily_usage ORDER BY iccid, day, location`)
}

// retried is a second delivery of ev: the same id and bytes, received
// (and, for a provider that sends no time, so "occurred") an hour later.
func retried(ev *simtrailv1.Event) *simtrailv1.Event {
	c := proto.Clone(ev).(*simtrailv1.Event)
	c.OccurredAt = timestamppb.New(c.GetOccurredAt().AsTime().Add(time.Hour))
	c.ReceivedAt = timestamppb.New(c.GetReceivedAt().AsTime().Add(time.Hour))
	return c
}

// messages numbers evs in stream order.
func messages(evs []*simtrailv1.Event) []projection.Message {
	out := make([]projection.Message, len(evs))
	for i, ev := range evs {
		out[i] = projection.Message{Seq: uint64(i + 1), Event: ev}
	}
	return out
}

// TestHeldWritesEqualEventByEvent: the timeline holds a transaction's
// writes back and writes them sorted at the flush. A log with every kind
// of event, shuffled, with redeliveries (some an hour later, as a
// Truphone retry is: same id, another receipt time) in the same batch and
// in later ones, applied in batches of random sizes, gives the rows that
// applying each event in a transaction of its own gives, and the first
// copy of an event in stream order is the one kept.
func TestHeldWritesEqualEventByEvent(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 3))
			base := genEvents(seed, 12, 60)
			r.Shuffle(len(base), func(i, j int) { base[i], base[j] = base[j], base[i] })
			var evs []*simtrailv1.Event
			for i, ev := range base {
				evs = append(evs, ev)
				if r.IntN(4) == 0 {
					// a copy of an event from nearby (same batch) or
					// long before (an earlier one)
					c := base[max(0, i-r.IntN(1+i))]
					if r.IntN(2) == 0 {
						c = retried(c)
					}
					evs = append(evs, c)
				}
			}
			msgs := messages(evs)

			p, held := openModel(t)
			for rest := msgs; len(rest) > 0; {
				n := min(len(rest), 1+r.IntN(400))
				if _, err := projection.ApplyBatch(ctx, held.Writer, p, rest[:n], 1, log); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			q, single := openModel(t)
			for _, m := range msgs {
				if _, err := projection.ApplyBatch(ctx, single.Writer, q, []projection.Message{m}, 1, log); err != nil {
					t.Fatal(err)
				}
			}
			got, want := dumpModel(t, held.Reader), dumpModel(t, single.Reader)
			if got != want {
				t.Fatalf("batched model differs from the event-by-event one:\n%s", projtest.FirstDiff(got, want))
			}
			var snaps, events int
			if err := held.Reader.QueryRow(`SELECT (SELECT count(*) FROM usage_snapshot), (SELECT count(*) FROM sim_event)`).Scan(&snaps, &events); err != nil {
				t.Fatal(err)
			}
			if events != len(base) {
				t.Fatalf("%d sim_event rows for %d distinct events", events, len(base))
			}
			if snaps == 0 {
				t.Fatal("no usage snapshots: the generated log should hold some")
			}
		})
	}
}

// TestRetryWithAnotherReceiptTime: a second copy of a usage event that
// arrives with another occurred-at (the receipt time, for a provider that
// sends none) adds no snapshot and no usage, whether it comes in the
// batch of the first copy or in a later one, and the first copy's time
// stays.
func TestRetryWithAnotherReceiptTime(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	var ev *simtrailv1.Event
	for _, e := range genEvents(1, 1, 20) {
		if e.GetKind() == simtrailv1.Kind_KIND_USAGE {
			ev = e
			break
		}
	}
	if ev == nil {
		t.Fatal("no usage event generated")
	}
	for _, sameBatch := range []bool{true, false} {
		t.Run(fmt.Sprint("same batch ", sameBatch), func(t *testing.T) {
			p, db := openModel(t)
			msgs := messages([]*simtrailv1.Event{ev, retried(ev)})
			batches := [][]projection.Message{msgs}
			if !sameBatch {
				batches = [][]projection.Message{msgs[:1], msgs[1:]}
			}
			for _, b := range batches {
				if _, err := projection.ApplyBatch(ctx, db.Writer, p, b, 1, log); err != nil {
					t.Fatal(err)
				}
			}
			var events, snaps int
			var at, bytes int64
			if err := db.Reader.QueryRow(`SELECT (SELECT count(*) FROM sim_event), (SELECT count(*) FROM usage_snapshot),
				(SELECT at FROM sim_event), (SELECT sum(bytes) FROM usage_day)`).Scan(&events, &snaps, &at, &bytes); err != nil {
				t.Fatal(err)
			}
			if events != 1 || snaps != 1 {
				t.Fatalf("%d events, %d snapshots; want one of each", events, snaps)
			}
			if want := ev.GetOccurredAt().AsTime().UnixNano(); at != want {
				t.Fatalf("stored time %d, want the first copy's %d", at, want)
			}
			if want := ev.GetSim().GetUsage().GetUsedBytes(); bytes != want {
				t.Fatalf("usage %d bytes, want %d", bytes, want)
			}
		})
	}
}

// TestHeldWritesOutsideTheRunner: Apply in a transaction nobody announced
// (so nobody calls FlushTx) writes its rows itself.
func TestHeldWritesOutsideTheRunner(t *testing.T) {
	ctx := context.Background()
	evs := genEvents(9, 6, 40)
	p, got := openModel(t)
	tx, err := got.Writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range messages(evs) {
		if err := p.Apply(ctx, tx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	q, want := openModel(t)
	if _, err := projection.ApplyBatch(ctx, want.Writer, q, messages(evs), 1, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if g, w := dumpModel(t, got.Reader), dumpModel(t, want.Reader); g != w || g == "" {
		t.Fatalf("model applied in a plain transaction differs from ApplyBatch's:\n%s", projtest.FirstDiff(g, w))
	}
}
