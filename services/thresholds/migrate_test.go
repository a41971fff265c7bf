package thresholds

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
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

// TestPrepareSwapKeepsLivePending: before a rebuilt model replaces the
// live one, its history is marked published except the alerts the live
// model had not published yet, matched by subject, period and level (not
// by alert_id: ids written by an older version differ).
func TestPrepareSwapKeepsLivePending(t *testing.T) {
	ctx := context.Background()
	evs := genEvents(10, 20, 60)
	var seqLive, seqFresh uint64
	p := newProjector(t, genOptions())
	live := openDB(t, p)
	applyAll(t, live, p, &seqLive, evs...)
	q := newProjector(t, genOptions())
	fresh := openDB(t, q)
	applyAll(t, fresh, q, &seqFresh, evs...)

	// The live model published all but three alerts; one of those carries
	// an id in some older form.
	if _, err := live.Writer.Exec(`UPDATE outbox SET published = 1 WHERE seq NOT IN (SELECT seq FROM outbox ORDER BY seq DESC LIMIT 3)`); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Writer.Exec(`UPDATE outbox SET alert_id = 'old-form-id' WHERE seq = (SELECT max(seq) FROM outbox)`); err != nil {
		t.Fatal(err)
	}
	if err := q.PrepareSwap(ctx, fresh.Writer, live.Writer, seqLive); err != nil {
		t.Fatal(err)
	}
	keys := func(db *sql.DB) string {
		rows, err := db.Query(`SELECT subject_type, subject_key, period_key, level FROM outbox WHERE published = 0 ORDER BY 1, 2, 3, 4`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			var st, key, period string
			var level int
			if err := rows.Scan(&st, &key, &period, &level); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s|%s|%s|%d\n", st, key, period, level)
		}
		return b.String()
	}
	want, got := keys(live.Reader), keys(fresh.Reader)
	if strings.Count(want, "\n") != 3 || got != want {
		t.Fatalf("pending after PrepareSwap:\n%s\nwant the live model's:\n%s", got, want)
	}
}
