package thresholds

import (
	"context"
	"database/sql"

	"github.com/simtrail/simtrail/pkg/projection"
)

// rowCache mirrors the read-model rows Apply needs to read before it
// writes: each SIM's head (current period position, status/IMEI
// versions), and each period's merged row and crossed levels. With it an
// event costs only writes: no SELECT of the state row or the levels, and
// the period is merged in Go and written with a plain INSERT or UPDATE
// (none when nothing changes, e.g. a duplicate).
//
// Every entry mirrors what the database holds as seen by the transaction
// applying: Apply updates an entry exactly as it writes its row. So a
// cache is valid only as long as none of those writes is undone and nobody
// else writes the tables:
//
//   - Apply resets it on every error (the runner then rolls the event back
//     to its savepoint, or the whole transaction back);
//   - a cache kept across transactions (see Projector.TxBegun) is reset
//     when a transaction does not commit (TxEnded), and when SQLite's
//     data_version shows that another connection committed in between.
//
// A reset only costs re-reading rows. The cache holds at most
// maxCachedSubjects subjects (an arbitrary one is forgotten to make room),
// so memory is bounded by the fleet size, not by the event count.
type rowCache struct {
	subjects map[subjectID]*subjectRows
	// dataVersion is PRAGMA data_version at the last commit through this
	// cache (models kept across transactions only).
	dataVersion int64
}

// maxCachedSubjects bounds a cache (about 1 KiB per SIM); a variable so
// that tests can make the cache forget often.
var maxCachedSubjects = 1 << 15

type subjectID struct{ st, key string }

// subjectRows is what is known of one subject.
type subjectRows struct {
	// SIMs only: state is the row as this transaction has it (held
	// until FlushTx when it changed), stored the row as SQLite holds it
	// (its indexed columns decide which statement writes it), stateNew
	// that SQLite holds none yet.
	state, stored        simRow
	stateKnown, stateNew bool
	// complete: every period row of the subject is in periods (its state
	// row was created in this cache's life), so a period not in periods
	// does not exist and needs no SELECT.
	complete bool
	periods  map[string]*periodRows
	// pinned: rows of the subject are held back (heldWrites), so the
	// entry must stay until they are written.
	pinned bool
	// stateHeld: the SIM's state row is to be written at FlushTx;
	// stateStale: its derived columns are to be computed from derivedFrom,
	// the current period, first (deriveSIM). derivedVersion is the
	// period's version they were (or are to be) derived at.
	stateHeld, stateStale bool
	derivedFrom           *periodRows
	derivedVersion        uint64
}

// periodRows is one (subject, period) row and, once read, its levels.
type periodRows struct {
	row    periodRow
	levels map[int]levelMark // nil until read
	// held: the row is to be written at FlushTx; heldLevels: which of
	// its levels are (see heldWrites).
	held       bool
	heldLevels map[int]bool
	// version counts the changes of row and levels in the cache, so that
	// writeSIM sees whether the state row derived from them is stale.
	version uint64
}

func newRowCache() *rowCache {
	return &rowCache{subjects: map[subjectID]*subjectRows{}}
}

func (c *rowCache) reset() { clear(c.subjects) }

// subject returns the entry of (st, key), creating an empty one.
func (c *rowCache) subject(st, key string) *subjectRows {
	id := subjectID{st, key}
	if s, ok := c.subjects[id]; ok {
		return s
	}
	if len(c.subjects) >= maxCachedSubjects {
		// Forget an arbitrary subject, never a pinned one: if every one
		// is pinned the cache grows until the transaction flushes.
		for k, s := range c.subjects {
			if !s.pinned {
				delete(c.subjects, k)
				break
			}
		}
	}
	s := &subjectRows{periods: map[string]*periodRows{}}
	c.subjects[id] = s
	return s
}

// models are the row caches kept across transactions, one per writer
// database (the live model and a rebuild's fresh model may be applied
// concurrently); the least recently begun is forgotten first.
type models struct {
	order []*sql.DB
	byDB  map[*sql.DB]*rowCache
}

const maxModels = 4

var _ projection.TxHooks = (*Projector)(nil)

// TxBegun implements projection.TxHooks: tx, on writer w, uses w's row
// cache, which is reset first if another connection committed since the
// cache's last commit.
func (p *Projector) TxBegun(ctx context.Context, tx *sql.Tx, w *sql.DB) {
	var dv int64
	err := tx.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&dv)
	p.stmts.mu.Lock()
	defer p.stmts.mu.Unlock()
	m := &p.stmts.models
	if m.byDB == nil {
		m.byDB = map[*sql.DB]*rowCache{}
	}
	c, ok := m.byDB[w]
	if !ok {
		if len(m.order) == maxModels {
			delete(m.byDB, m.order[0])
			m.order = m.order[1:]
		}
		c = newRowCache()
		m.byDB[w] = c
	} else {
		for i, d := range m.order {
			if d == w {
				m.order = append(m.order[:i], m.order[i+1:]...)
				break
			}
		}
	}
	m.order = append(m.order, w)
	if err != nil || dv != c.dataVersion {
		c.reset()
	}
	c.dataVersion = dv
	e := p.stmts.entryLocked(tx)
	e.rows, e.announced = c, true
}

// TxEnded implements projection.TxHooks: tx's statements are forgotten,
// and its row cache too unless tx committed.
func (p *Projector) TxEnded(tx *sql.Tx, committed bool) {
	p.stmts.mu.Lock()
	defer p.stmts.mu.Unlock()
	e, ok := p.stmts.byTx[tx]
	if !ok {
		return
	}
	if !committed {
		e.rows.reset()
	}
	delete(p.stmts.byTx, tx)
	for i, t := range p.stmts.order {
		if t == tx {
			p.stmts.order = append(p.stmts.order[:i], p.stmts.order[i+1:]...)
			break
		}
	}
}
