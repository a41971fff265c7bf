package projection

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

var blobMigrations = fstest.MapFS{"00001_init.sql": {Data: []byte(`-- +goose Up
CREATE TABLE blob (id INTEGER PRIMARY KEY, b BLOB NOT NULL);
-- +goose Down
DROP TABLE blob;
`)}}

// writeSmallTxs commits n transactions of one 4 KiB row each (a page or
// two per commit, as the live projectors write).
func writeSmallTxs(t *testing.T, db *sql.DB, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := db.Exec(`INSERT INTO blob(b) VALUES(randomblob(4096))`); err != nil {
			t.Fatal(err)
		}
	}
}

func pragma(t *testing.T, db *sql.DB, p string) string {
	t.Helper()
	var v string
	if err := db.QueryRow(`PRAGMA ` + p).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", p, err)
	}
	return v
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestCheckpointsOffTheCommitPath: the writer checkpoints only past its
// backstop, so what reaches the database file below that was copied by
// the background checkpointer; and a checkpoint leaves the writer's
// data_version alone (the thresholds row cache, kept across transactions,
// resets whenever it moves).
func TestCheckpointsOffTheCommitPath(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	d, err := Open(ctx, path, blobMigrations)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := pragma(t, d.Writer, "wal_autocheckpoint"); got != writerAutoCheckpoint {
		t.Fatalf("writer wal_autocheckpoint %s, want %s", got, writerAutoCheckpoint)
	}

	before := fileSize(t, path)
	writeSmallTxs(t, d.Writer, 1500) // ~3000 frames: over SQLite's default of 1000, under the backstop
	// The database file holds the rows only once a checkpoint copied them.
	want := before + 1500*4096
	deadline := time.Now().Add(10 * time.Second)
	for fileSize(t, path) < want {
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes after 10 s, want ≥ %d: nothing checkpointed the WAL", fileSize(t, path), want)
		}
		time.Sleep(20 * time.Millisecond)
	}

	version := pragma(t, d.Writer, "data_version")
	writeSmallTxs(t, d.Writer, 10)
	afterWrite := pragma(t, d.Writer, "data_version")
	frames, copied, err := d.ckpt.checkpoint(ctx)
	if err != nil || frames == 0 || copied != frames {
		t.Fatalf("checkpoint: %d frames, %d copied, %v; want all copied", frames, copied, err)
	}
	if got := pragma(t, d.Writer, "data_version"); got != afterWrite || afterWrite != version {
		t.Errorf("writer data_version %s, %s after its own writes, %s after a checkpoint; want it unmoved", version, afterWrite, got)
	}
}

// TestBulkModePausesCheckpoints: bulk mode can leave WAL mode (an open
// checkpointer connection would keep the file in it), no checkpoint runs
// meanwhile, and leaving bulk mode brings both back.
func TestBulkModePausesCheckpoints(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "m.db"), blobMigrations)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	writeSmallTxs(t, d.Writer, 10)
	if _, _, err := d.ckpt.checkpoint(ctx); err != nil { // the checkpointer's connection is open
		t.Fatal(err)
	}
	restore, err := d.BulkMode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := pragma(t, d.Writer, "journal_mode"); got != "memory" {
		t.Fatalf("journal_mode in bulk mode %q, want memory", got)
	}
	if frames, copied, err := d.ckpt.checkpoint(ctx); frames != 0 || copied != 0 || err != nil {
		t.Errorf("checkpoint in bulk mode: %d, %d, %v; want none", frames, copied, err)
	}
	writeSmallTxs(t, d.Writer, 10)
	if err := restore(ctx); err != nil {
		t.Fatal(err)
	}
	if got := pragma(t, d.Writer, "journal_mode"); got != "wal" {
		t.Fatalf("journal_mode after bulk mode %q, want wal", got)
	}
	writeSmallTxs(t, d.Writer, 10)
	frames, copied, err := d.ckpt.checkpoint(ctx)
	if err != nil || frames == 0 || copied != frames {
		t.Errorf("checkpoint after bulk mode: %d frames, %d copied, %v", frames, copied, err)
	}
}

// TestCloseStopsCheckpointer: Close ends the goroutine and its connection.
func TestCloseStopsCheckpointer(t *testing.T) {
	d, err := Open(context.Background(), filepath.Join(t.TempDir(), "m.db"), blobMigrations)
	if err != nil {
		t.Fatal(err)
	}
	ck := d.ckpt
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ck.done:
	default:
		t.Fatal("checkpointer still running after Close")
	}
	if _, _, err := ck.checkpoint(context.Background()); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("checkpoint after Close: %v, want a closed database", err)
	}
}
