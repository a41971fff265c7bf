package thresholds

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/simtrail/simtrail/pkg/projection"
)

// TestHeldWritesOutsideTheRunner: Apply in a transaction the runner did
// not announce (no TxBegun, so nobody calls FlushTx) writes its held rows
// itself, and the model equals the one ApplyBatch builds.
func TestHeldWritesOutsideTheRunner(t *testing.T) {
	ctx := context.Background()
	evs := genEvents(7, 30, 80)
	p := newProjector(t, genOptions())
	got := openDB(t, p)
	for _, b := range batches(evs, 200) {
		tx, err := got.Writer.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range b {
			if err := p.Apply(ctx, tx, m); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	want := build(t, genOptions(), evs...)
	g, w := dumpTables(t, got.Reader), dumpTables(t, want)
	if g != w {
		t.Fatal("model applied in plain transactions differs from ApplyBatch's")
	}
	for _, table := range []string{"period", "level", "outbox", "snapshot", "alert"} {
		var n int
		if err := got.Reader.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("no %s rows: the generated log should hold some", table)
		}
	}
}

// TestHeldWritesSurviveCacheEviction: with a row cache far smaller than
// the fleet it forgets subjects all the time, but never one whose rows are
// still held (re-reading it from SQLite would miss them), so big batches
// give the model a clean build gives.
func TestHeldWritesSurviveCacheEviction(t *testing.T) {
	defer func(n int) { maxCachedSubjects = n }(maxCachedSubjects)
	maxCachedSubjects = 4
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	// Interleave the SIMs (genEvents lists them one after the other), so
	// a batch comes back to subjects the cache forgot in it.
	evs := genEvents(8, 60, 40)
	rand.New(rand.NewPCG(8, 1)).Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	p := newProjector(t, genOptions())
	got := openDB(t, p)
	for _, b := range batches(evs, 500) {
		if _, err := projection.ApplyBatch(ctx, got.Writer, p, b, 1, log); err != nil {
			t.Fatal(err)
		}
	}
	maxCachedSubjects = 1 << 15
	want := build(t, genOptions(), evs...)
	if dumpTables(t, got.Reader) != dumpTables(t, want) {
		t.Fatal("model built with a tiny row cache differs from a clean build")
	}
}

// TestHeldNewRowsRefuseStoredOnes: a level the row cache takes for new is
// written with a plain INSERT, so if SQLite does hold it (here written on
// the writer's own connection behind the cache's back, which data_version
// cannot see) the batch fails and is re-applied from fresh reads: the
// stored earlier crossing stays, and no second announcement is written.
func TestHeldNewRowsRefuseStoredOnes(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	evs := genEvents(12, 10, 60)
	half := len(evs) / 2
	full := build(t, genOptions(), evs...)
	p := newProjector(t, genOptions())
	db := openDB(t, p)
	msgs := batches(evs, len(evs))[0]
	if _, err := projection.ApplyBatch(ctx, db.Writer, p, msgs[:half], 1, log); err != nil {
		t.Fatal(err)
	}
	// A level the second half crosses for the first time.
	var st, key, period string
	level := -1
	rows, err := full.Query(`SELECT subject_type, subject_key, period_key, level FROM level`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() && level < 0 {
		var s, k, pk string
		var l, n int
		if err := rows.Scan(&s, &k, &pk, &l); err != nil {
			t.Fatal(err)
		}
		if err := db.Writer.QueryRow(`SELECT count(*) FROM level WHERE subject_type = ? AND subject_key = ? AND period_key = ? AND level = ?`,
			s, k, pk, l).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			st, key, period, level = s, k, pk, l
		}
	}
	rows.Close()
	if level < 0 {
		t.Fatal("the second half crosses no new level")
	}
	var n int
	if _, err := db.Writer.Exec(`INSERT INTO level VALUES(?, ?, ?, ?, 1, 0, 'stored-before')`, st, key, period, level); err != nil {
		t.Fatal(err)
	}
	if _, err := projection.ApplyBatch(ctx, db.Writer, p, msgs[half:], 1, log); err != nil {
		t.Fatal(err)
	}
	var at int64
	var ev string
	if err := db.Reader.QueryRow(`SELECT crossed_at, event_id FROM level WHERE subject_type = ? AND subject_key = ? AND period_key = ? AND level = ?`,
		st, key, period, level).Scan(&at, &ev); err != nil {
		t.Fatal(err)
	}
	if at != 1 || ev != "stored-before" {
		t.Errorf("stored earlier crossing overwritten: crossed_at %d by %s", at, ev)
	}
	if err := db.Reader.QueryRow(`SELECT count(*) FROM outbox WHERE subject_type = ? AND subject_key = ? AND period_key = ? AND level = ?`,
		st, key, period, level).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d outbox rows for a level SQLite already held (%v)", n, err)
	}
}
