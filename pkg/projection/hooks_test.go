package projection_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"log/slog"
	"testing"

	"github.com/simtrail/simtrail/pkg/projection"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

// holder holds every event's row back until FlushTx, whose write fails
// when the ICCID "flush-fails" is among the rows held.
type holder struct {
	counter
	held    []projection.Message
	flushes int
}

var (
	_ projection.TxHooks   = (*holder)(nil)
	_ projection.TxFlusher = (*holder)(nil)
)

func (h *holder) Migrations() fs.FS { return h.counter.Migrations() }

func (h *holder) TxBegun(context.Context, *sql.Tx, *sql.DB) { h.held = nil }
func (h *holder) TxEnded(*sql.Tx, bool)                     { h.held = nil }

func (h *holder) Apply(_ context.Context, _ *sql.Tx, m projection.Message) error {
	h.held = append(h.held, m)
	return nil
}

func (h *holder) FlushTx(ctx context.Context, tx *sql.Tx) error {
	h.flushes++
	held := h.held
	h.held = nil // written or dropped, never twice
	for _, m := range held {
		if m.Event.GetIccid() == "flush-fails" {
			return errors.New("held write failed")
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO seen(event_id, seq) VALUES(?, ?)`, m.Event.GetId(), m.Seq); err != nil {
			return err
		}
	}
	return nil
}

func heldMsgs(iccids ...string) []projection.Message {
	out := make([]projection.Message, len(iccids))
	for i, id := range iccids {
		out[i] = projection.Message{Seq: uint64(i + 1), Subject: "simtrail.events.x",
			Event: &simtrailv1.Event{Id: "ev-" + id, Iccid: id}}
	}
	return out
}

// TestTxFlusher: held writes reach the database before the commit, once
// per batch on the fast path; when a held write fails, the batch is
// applied event by event with a flush inside each savepoint, so only the
// failing event is lost (as poison) and no other is written twice.
func TestTxFlusher(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	h := &holder{}
	db := openModel(t, h, "held.db")
	seen := func() (n int) {
		t.Helper()
		if err := db.Reader.QueryRow(`SELECT count(*) FROM seen`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	res, err := projection.ApplyBatch(ctx, db.Writer, h, heldMsgs("a", "b", "c"), 1, log)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 3 || h.flushes != 1 || seen() != 3 {
		t.Fatalf("fast path: applied %d, flushes %d, rows %d; want 3, 1, 3", res.Applied, h.flushes, seen())
	}

	h.flushes = 0
	batch := heldMsgs("d", "flush-fails", "e")
	for i := range batch {
		batch[i].Seq += 10
	}
	res, err = projection.ApplyBatch(ctx, db.Writer, h, batch, 1, log)
	if err != nil {
		t.Fatal(err)
	}
	// One failed flush on the fast path, then one per event.
	if res.Applied != 2 || res.Poisoned != 1 || h.flushes != 1+3 {
		t.Fatalf("careful path: applied %d, poisoned %d, flushes %d; want 2, 1, 4", res.Applied, res.Poisoned, h.flushes)
	}
	if n := seen(); n != 5 {
		t.Fatalf("%d rows after the failing batch, want 5 (its two good events)", n)
	}
	var pos uint64
	if err := db.Reader.QueryRow(`SELECT last_seq FROM projection_checkpoint WHERE name = ?`, h.Name()).Scan(&pos); err != nil {
		t.Fatal(err)
	}
	if pos != 13 {
		t.Fatalf("checkpoint %d, want 13", pos)
	}
}
