package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"

	"github.com/pressly/goose/v3"

	// The read models are SQLite files (cgo driver, as the brief fixes).
	_ "github.com/mattn/go-sqlite3"
)

// stmtCacheSize is how many prepared statements each connection keeps
// (go-sqlite3's _stmt_cache_size): more than any projector or query
// handler uses distinct SQL texts.
const stmtCacheSize = "128"

// Page caches of the writer connection, in KiB (SQLite's negative
// cache_size): while serving, and while building (see BulkMode).
const (
	writerCacheSize = "-65536"
	bulkCacheSize   = "-262144"
)

// DB is one SQLite read model: a single writer connection (SQLite allows one
// writer; a pool would only add lock contention) and a pool of read-only
// connections for the query API, which WAL lets run beside the writer.
type DB struct {
	Path   string
	Writer *sql.DB
	Reader *sql.DB
}

// Open opens (creating if needed) the SQLite file at path and brings its
// schema up to date: the runner's own tables and then the projector's
// numbered migrations from fsys (goose SQL files at the root of fsys).
//
// synchronous=NORMAL in WAL mode survives any process crash; a power loss
// may drop the last transactions, but the checkpoint is in the same
// transactions as the rows, so the projection simply re-reads those events.
func Open(ctx context.Context, path string, migrations fs.FS) (*DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "NORMAL")
	q.Set("_busy_timeout", "10000")
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	q.Set("_cache_size", writerCacheSize)
	// Keep prepared statements per connection: projectors and handlers
	// that call Exec/Query with SQL text would otherwise pay
	// sqlite3_prepare on every call (a third of a rebuild's CPU in the
	// thresholds projector before this; see docs/performance.md).
	q.Set("_stmt_cache_size", stmtCacheSize)
	w, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := migrate(ctx, w, migrations); err != nil {
		w.Close()
		return nil, err
	}
	rq := url.Values{}
	rq.Set("_busy_timeout", "10000")
	rq.Set("_query_only", "true")
	// database/sql hands a connection to one goroutine at a time, so
	// SQLite's per-connection mutex only cost time: about a tenth of a
	// 31-day usage statement (docs/performance.md). The one call from
	// another goroutine, go-sqlite3 interrupting a statement whose
	// context ended, is sqlite3_interrupt, which takes no mutex.
	rq.Set("_mutex", "no")
	rq.Set("_cache_size", "-16384")
	rq.Set("_stmt_cache_size", stmtCacheSize)
	r, err := sql.Open("sqlite3", "file:"+path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite reader %s: %w", path, err)
	}
	n := 2 * runtime.GOMAXPROCS(0)
	if n < 4 {
		n = 4
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &DB{Path: path, Writer: w, Reader: r}, nil
}

// Close closes both pools.
func (d *DB) Close() error {
	return errors.Join(d.Reader.Close(), d.Writer.Close())
}

const runnerSchema = `
CREATE TABLE IF NOT EXISTS projection_checkpoint (
	name     TEXT PRIMARY KEY,
	last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS projection_poison (
	seq         INTEGER PRIMARY KEY,
	event_id    TEXT NOT NULL,
	subject     TEXT NOT NULL,
	error       TEXT NOT NULL,
	attempts    INTEGER NOT NULL,
	recorded_at TEXT NOT NULL
);`

func migrate(ctx context.Context, db *sql.DB, migrations fs.FS) error {
	if _, err := db.ExecContext(ctx, runnerSchema); err != nil {
		return fmt.Errorf("create runner tables: %w", err)
	}
	if migrations == nil {
		return nil
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, migrations, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// Checkpoint reads the last applied stream sequence of projection name.
func Checkpoint(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, name string) (uint64, error) {
	var seq uint64
	err := q.QueryRowContext(ctx, `SELECT last_seq FROM projection_checkpoint WHERE name = ?`, name).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read checkpoint: %w", err)
	}
	return seq, nil
}

func saveCheckpoint(ctx context.Context, tx *sql.Tx, name string, seq uint64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO projection_checkpoint(name, last_seq) VALUES(?, ?)
		ON CONFLICT(name) DO UPDATE SET last_seq = excluded.last_seq`, name, seq)
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// Poison is an event the projector could not apply; it was skipped.
type Poison struct {
	Seq        uint64 `json:"sequence"`
	EventID    string `json:"event_id"`
	Subject    string `json:"subject"`
	Error      string `json:"error"`
	Attempts   int    `json:"attempts"`
	RecordedAt string `json:"recorded_at"`
}

// ListPoison returns the most recent skipped events, newest first.
func ListPoison(ctx context.Context, db *sql.DB, limit int) ([]Poison, int, error) {
	var total int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM projection_poison`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count poison: %w", err)
	}
	rows, err := db.QueryContext(ctx, `SELECT seq, event_id, subject, error, attempts, recorded_at
		FROM projection_poison ORDER BY seq DESC LIMIT ?`, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("list poison: %w", err)
	}
	defer rows.Close()
	out := []Poison{}
	for rows.Next() {
		var p Poison
		if err := rows.Scan(&p.Seq, &p.EventID, &p.Subject, &p.Error, &p.Attempts, &p.RecordedAt); err != nil {
			return nil, 0, fmt.Errorf("scan poison: %w", err)
		}
		out = append(out, p)
	}
	return out, total, rows.Err()
}

// BulkMode speeds up building a read model nobody is reading yet (an
// offline or online rebuild): the rollback journal is kept in memory and
// nothing is fsynced. A crash mid-build can corrupt the file, which is then
// simply discarded and built again; the log is the source of truth. The
// returned function restores WAL and synchronous=NORMAL and must run before
// the file is served.
func (d *DB) BulkMode(ctx context.Context) (restore func(context.Context) error, err error) {
	if _, err := d.Writer.ExecContext(ctx, `PRAGMA journal_mode=MEMORY`); err != nil {
		return nil, fmt.Errorf("bulk mode: %w", err)
	}
	// A larger page cache while building: the random-key indexes of a
	// million-event model (the timeline's 80 MB event-id index among them)
	// then stay in memory instead of being read back page by page (1 M
	// timeline build: 54.4 s, 13.9 s of it in the kernel, with 64 MiB;
	// 48.3 s, 8.5 s in the kernel, with 256 MiB).
	if _, err := d.Writer.ExecContext(ctx, `PRAGMA cache_size=`+bulkCacheSize); err != nil {
		return nil, fmt.Errorf("bulk mode: %w", err)
	}
	if _, err := d.Writer.ExecContext(ctx, `PRAGMA synchronous=OFF`); err != nil {
		return nil, fmt.Errorf("bulk mode: %w", err)
	}
	return func(ctx context.Context) error {
		if _, err := d.Writer.ExecContext(ctx, `PRAGMA journal_mode=WAL`); err != nil {
			return fmt.Errorf("leave bulk mode: %w", err)
		}
		if _, err := d.Writer.ExecContext(ctx, `PRAGMA synchronous=NORMAL`); err != nil {
			return fmt.Errorf("leave bulk mode: %w", err)
		}
		if _, err := d.Writer.ExecContext(ctx, `PRAGMA cache_size=`+writerCacheSize); err != nil {
			return fmt.Errorf("leave bulk mode: %w", err)
		}
		return nil
	}, nil
}
