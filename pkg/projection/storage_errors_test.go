package projection_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/mattn/go-sqlite3"
	"github.com/simtrail/simtrail/pkg/projection"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

// diskFull fails every Apply the way SQLite does when the disk is full,
// wrapped as projectors wrap their errors.
type diskFull struct{ counter }

func (d *diskFull) Apply(context.Context, *sql.Tx, projection.Message) error {
	return fmt.Errorf("upsert usage day: %w", sqlite3.Error{Code: sqlite3.ErrFull})
}

// TestStorageErrorIsNotPoison: a full (or read-only, or failing) disk is
// not the event's fault. ApplyBatch must fail the batch — no poison row, no
// checkpoint — so the runner retries it once the disk is repaired, instead
// of skipping good events (found by the fault suite, internal/faults).
func TestStorageErrorIsNotPoison(t *testing.T) {
	ctx := context.Background()
	p := &diskFull{}
	db, err := projection.Open(ctx, filepath.Join(t.TempDir(), "full.db"), p.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	msgs := []projection.Message{
		{Seq: 1, Event: &simtrailv1.Event{Id: "a"}},
		{Seq: 2, Event: &simtrailv1.Event{Id: "b"}},
	}
	res, err := projection.ApplyBatch(ctx, db.Writer, p, msgs, 3, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !projection.IsStorageError(err) {
		t.Fatalf("ApplyBatch = %+v, %v; want the storage error", res, err)
	}
	if res.Poisoned != 0 {
		t.Fatalf("poisoned %d events because the disk was full", res.Poisoned)
	}
	if _, n, err := projection.ListPoison(ctx, db.Reader, 10); err != nil || n != 0 {
		t.Fatalf("poison rows %d (%v), want 0", n, err)
	}
	if pos, err := projection.Checkpoint(ctx, db.Writer, p.Name()); err != nil || pos != 0 {
		t.Fatalf("checkpoint %d (%v), want 0", pos, err)
	}
}
