package thresholds

import (
	"context"
	"io/fs"
	"log/slog"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/simtrail/simtrail/pkg/projection"
)

// TestOutboxMigration: a model written under migration 00001 (outbox with
// a unique alert_id and AUTOINCREMENT) and carried on under 00002 ends
// equal to a model built under 00002 alone, its outbox rows keep their
// sequence order, and the unique index is gone.
func TestOutboxMigration(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	p := newProjector(t, genOptions())
	b, err := fs.ReadFile(p.Migrations(), "00001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	v1 := fstest.MapFS{"00001_init.sql": &fstest.MapFile{Data: b}}
	evs := genEvents(9, 30, 60)
	bs := batches(evs, 300)
	path := filepath.Join(t.TempDir(), "model.db")
	apply := func(migrations fs.FS, bs [][]projection.Message) {
		db, err := projection.Open(ctx, path, migrations)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		q := newProjector(t, genOptions())
		for _, b := range bs {
			if _, err := projection.ApplyBatch(ctx, db.Writer, q, b, 1, log); err != nil {
				t.Fatal(err)
			}
		}
	}
	apply(v1, bs[:len(bs)/2])
	apply(p.Migrations(), bs[len(bs)/2:])

	db, err := projection.Open(ctx, path, p.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := build(t, genOptions(), evs...)
	if dumpTables(t, db.Reader) != dumpTables(t, want) {
		t.Fatal("model migrated half way differs from one built under the new schema")
	}
	var unique int
	if err := db.Reader.QueryRow(`SELECT count(*) FROM pragma_index_list('outbox') WHERE "unique" = 1`).Scan(&unique); err != nil {
		t.Fatal(err)
	}
	if unique != 0 {
		t.Fatalf("outbox still has %d unique index(es)", unique)
	}
	var n, outOfOrder int
	if err := db.Reader.QueryRow(`SELECT count(*), coalesce(sum(a.cause_seq > b.cause_seq), 0) FROM outbox a JOIN outbox b ON b.seq = a.seq + 1`).
		Scan(&n, &outOfOrder); err != nil {
		t.Fatal(err)
	}
	if n == 0 || outOfOrder != 0 {
		t.Fatalf("outbox: %d neighbour pairs, %d with a later cause before an earlier one", n, outOfOrder)
	}
}
