package projection

import (
	"errors"
	"strings"

	"github.com/mattn/go-sqlite3"
)

// IsStorageError reports whether err is the database's environment failing
// (disk full, I/O error, read-only file or directory, cannot open, locked,
// out of memory) rather than an event the projector cannot apply. Such an
// error says nothing about the event: the batch must be rolled back and
// retried later from the checkpoint, never recorded as poison and skipped —
// otherwise a full disk would silently drop good events from the read model.
func IsStorageError(err error) bool {
	if err == nil {
		return false
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrFull, sqlite3.ErrIoErr, sqlite3.ErrReadonly, sqlite3.ErrCantOpen,
			sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrNomem, sqlite3.ErrProtocol:
			return true
		}
		return false
	}
	// Projectors may wrap with %v and lose the type; the messages are
	// SQLite's own and stable.
	msg := err.Error()
	for _, s := range []string{"database or disk is full", "disk I/O error", "readonly database", "unable to open database file"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// resetConns drops the idle connections of both pools so the next
// transaction opens fresh ones. SQLite falls back to a read-only handle when
// the file or its directory is read-only at open time, and it shares the WAL
// index of a file between all connections of the process: as long as any
// connection opened read-only lives, a writer stays read-only even after
// the directory is writable again. Only new connections see the repaired
// file system.
func (r *Runner) resetConns() {
	db := r.DB()
	db.Writer.SetMaxIdleConns(0)
	db.Writer.SetMaxIdleConns(1)
	n := db.Reader.Stats().MaxOpenConnections
	db.Reader.SetMaxIdleConns(0)
	db.Reader.SetMaxIdleConns(n)
}
