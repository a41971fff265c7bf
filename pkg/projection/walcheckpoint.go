package projection

import (
	"context"
	"database/sql"
	"sync"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// WAL checkpoints run off the commit path.
//
// SQLite's default checkpoints the WAL from inside the commit that grows
// it past 1000 pages: that commit copies the pages into the database file
// and fsyncs both files. At 1,000 webhooks/s a read model's WAL passes
// 1000 pages every few dozen events, so every tenth of a second one small
// batch took 30-70 ms on the reference VM, and every event queued behind it
// waited: freshness p99 62 ms with them, 12.7 ms without (docs/performance.md).
// So the writer only checkpoints itself as a backstop (writerAutoCheckpoint
// pages, when the background checkpointer cannot keep up or has stopped),
// and a connection of its own runs PASSIVE checkpoints every
// checkpointInterval. PASSIVE never waits for the writer or readers; it
// copies what it can, and the writer restarts the WAL from its start once a
// checkpoint has copied everything no reader still needs.

// writerDriver is go-sqlite3 with the writer's per-connection settings
// applied to every connection it opens (database/sql may replace a
// connection it considers broken; a PRAGMA run once would be lost then).
const writerDriver = "sqlite3-simtrail-writer"

// writerAutoCheckpoint is the writer's own checkpoint threshold in pages
// (64 MiB of 4 KiB pages): the backstop that bounds the WAL.
const writerAutoCheckpoint = "16384"

// checkpointInterval is how often the background checkpointer runs.
const checkpointInterval = 100 * time.Millisecond

func init() {
	sql.Register(writerDriver, &sqlite3.SQLiteDriver{
		ConnectHook: func(c *sqlite3.SQLiteConn) error {
			_, err := c.Exec(`PRAGMA wal_autocheckpoint=`+writerAutoCheckpoint, nil)
			return err
		},
	})
}

// checkpointer runs PASSIVE WAL checkpoints of one database file on its own
// connection until stopped. Bulk mode pauses it (its journal is not a WAL,
// and an open connection would keep the file in WAL mode).
type checkpointer struct {
	db     *sql.DB
	mu     sync.Mutex // held by a checkpoint, and while pausing
	paused bool
	stop   context.CancelFunc
	done   chan struct{}
}

func startCheckpointer(dsn string) (*checkpointer, error) {
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{db: db, stop: cancel, done: make(chan struct{})}
	go c.run(ctx)
	return c, nil
}

func (c *checkpointer) run(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// An error (busy, a full disk) is retried at the next tick; the
			// writer's own backstop checkpoint still bounds the WAL.
			_, _, _ = c.checkpoint(ctx)
		}
	}
}

// checkpoint runs one PASSIVE checkpoint and returns the WAL's frames and
// how many of them are now in the database file.
func (c *checkpointer) checkpoint(ctx context.Context) (walFrames, copied int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused {
		return 0, 0, nil
	}
	var busy int
	err = c.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &walFrames, &copied)
	return walFrames, copied, err
}

// pause waits for a running checkpoint and closes the connection until
// resume.
func (c *checkpointer) pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paused = true
	c.db.SetMaxIdleConns(0) // closes the idle connection
}

func (c *checkpointer) resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paused = false
	c.db.SetMaxIdleConns(1)
}

func (c *checkpointer) close() error {
	c.stop()
	<-c.done
	return c.db.Close()
}
