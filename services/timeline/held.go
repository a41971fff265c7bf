package timeline

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/simtrail/simtrail/pkg/projection"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

// The timeline holds every write of a transaction back until the runner
// flushes it (projection.TxFlusher), just before the checkpoint and the
// commit, and then writes each table's rows sorted by its key, many rows
// per statement:
//
//   - sim_event rows sorted by event id: the id index is keyed at random
//     (a hash), so one insert per event in stream order walked to a
//     random leaf page each time; sorted, a batch's inserts descend the
//     B-tree in order and share their interior pages;
//   - usage_snapshot rows sorted by (iccid, at, event id), the table's
//     clustering key, and usage_day folded from them in Go (foldSnapshots);
//   - per-day rows (daily_usage) reduced in Go to the newest snapshot's
//     value per (iccid, day, location) first: a Roamify snapshot resends
//     every day of its package, so most of a batch's rows repeat others.
//
// Apply reads nothing back (the model is written, never read, by Apply),
// so holding writes back changes no result. Whether an event is new, which
// decides whether its snapshot and per-day rows are written, is what the
// sim_event INSERT OR IGNORE ... RETURNING reports at the flush: a second
// copy of an event (same id, possibly another receipt time) adds nothing.

// heldTx is what one transaction holds back.
type heldTx struct {
	// announced: the runner announced tx (TxBegun), so it calls FlushTx
	// before it commits; otherwise Apply flushes its own writes.
	announced bool
	// last is the writer's cache of each SIM's newest stored snapshot, or
	// nil (a transaction the runner did not announce reads it each time).
	last  *lastSnaps
	rows  []eventRow
	stmts map[string]*sql.Stmt
	// scratch reused by flush
	order  []int
	fresh  []bool
	args   []any
	snaps  []snapRow
	days   map[dayNum]int64
	daysS  []dayNumRow
	daily  map[dayKey]dayVal
	dailyS []dayRow
}

type snapRow struct {
	iccid    string
	at       int64
	id       string
	used     int64
	periodID string
}

// after reports whether s sorts after t in a SIM's snapshot order.
func (s *snapRow) after(t *snapRow) bool {
	return s.at > t.at || s.at == t.at && s.id > t.id
}

type dayKey struct{ iccid, day, location string }

type dayVal struct {
	bytes, at int64
	id        string
}

type dayRow struct {
	k dayKey
	v dayVal
}

// dayNum is a usage_day key: a SIM and a UTC day number.
type dayNum struct {
	iccid string
	day   int64
}

type dayNumRow struct {
	k     dayNum
	bytes int64
}

// heldTxs are the transactions with held writes (a live runner and a
// rebuild may apply through one Projector at once) and, per writer
// database, the cache of each SIM's newest stored snapshot.
type heldTxs struct {
	mu     sync.Mutex
	byTx   map[*sql.Tx]*heldTx
	models []*lastSnaps // the most recently begun last
}

// lastSnaps mirrors, for the SIMs it holds, the newest row of
// usage_snapshot (by at, then event id) as the writer's committed
// database holds it, or that the SIM has none. It is
// valid only while nothing undoes a write it saw and nobody else writes
// the file: it is cleared when a transaction does not commit, when a flush
// fails, and when SQLite's data_version shows another connection
// committed.
type lastSnaps struct {
	w           *sql.DB
	bySIM       map[string]cachedSnap
	dataVersion int64
	// spare is the writer's last transaction state, emptied, for the next
	// one: its slices and maps keep their capacity (a build's batches are
	// all alike), where a new one per transaction regrew them every batch.
	spare *heldTx
}

// maxLastSnaps bounds the cache (about 200 B a SIM): beyond it, it starts
// over, and a SIM's newest snapshot is read again on its next batch.
const maxLastSnaps = 1 << 16

const maxModels = 4

// cachedSnap is a SIM's newest stored snapshot s, when it has one.
type cachedSnap struct {
	s   snapRow
	has bool
}

func (c *lastSnaps) reset() { clear(c.bySIM) }

func (c *lastSnaps) set(iccid string, v cachedSnap) {
	if len(c.bySIM) >= maxLastSnaps {
		c.reset()
	}
	c.bySIM[iccid] = v
}

func newHeldTx(announced bool, last *lastSnaps) *heldTx {
	return &heldTx{announced: announced, last: last, stmts: map[string]*sql.Stmt{},
		days: map[dayNum]int64{}, daily: map[dayKey]dayVal{}}
}

var (
	_ projection.TxHooks   = (*Projector)(nil)
	_ projection.TxFlusher = (*Projector)(nil)
)

// TxBegun implements projection.TxHooks: tx's writes are held until
// FlushTx, and tx uses w's snapshot cache, cleared first if another
// connection committed since.
func (p *Projector) TxBegun(ctx context.Context, tx *sql.Tx, w *sql.DB) {
	var dv int64
	err := tx.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&dv)
	p.held.mu.Lock()
	defer p.held.mu.Unlock()
	if p.held.byTx == nil {
		p.held.byTx = map[*sql.Tx]*heldTx{}
	}
	var c *lastSnaps
	for i, m := range p.held.models {
		if m.w == w {
			c = m
			p.held.models = slices.Delete(p.held.models, i, i+1)
			break
		}
	}
	if c == nil {
		if len(p.held.models) == maxModels {
			p.held.models = slices.Delete(p.held.models, 0, 1)
		}
		c = &lastSnaps{w: w, bySIM: map[string]cachedSnap{}}
	}
	p.held.models = append(p.held.models, c)
	if err != nil || dv != c.dataVersion {
		c.reset()
	}
	c.dataVersion = dv
	h := c.spare
	c.spare = nil
	if h == nil {
		h = newHeldTx(true, c)
	}
	p.held.byTx[tx] = h
}

// TxEnded implements projection.TxHooks: whatever tx still held is void,
// and so is the snapshot cache unless tx committed.
func (p *Projector) TxEnded(tx *sql.Tx, committed bool) {
	p.held.mu.Lock()
	defer p.held.mu.Unlock()
	h := p.held.byTx[tx]
	if h == nil {
		return
	}
	if !committed {
		h.last.reset()
	}
	delete(p.held.byTx, tx)
	h.reset()
	clear(h.stmts) // they belong to the ended transaction
	h.last.spare = h
}

// heldFor is tx's held state, or nil when the runner did not announce tx.
func (p *Projector) heldFor(tx *sql.Tx) *heldTx {
	p.held.mu.Lock()
	defer p.held.mu.Unlock()
	return p.held.byTx[tx]
}

// FlushTx implements projection.TxFlusher.
func (p *Projector) FlushTx(ctx context.Context, tx *sql.Tx) error {
	h := p.heldFor(tx)
	if h == nil {
		return nil
	}
	return h.flush(ctx, tx)
}

// hold adds r to what tx writes at the flush.
func (h *heldTx) hold(r eventRow) { h.rows = append(h.rows, r) }

func (h *heldTx) reset() {
	clear(h.rows)
	h.rows = h.rows[:0]
	clear(h.snaps)
	h.snaps = h.snaps[:0]
	clear(h.days)
	clear(h.daysS)
	h.daysS = h.daysS[:0]
	clear(h.daily)
	clear(h.dailyS)
	h.dailyS = h.dailyS[:0]
	clear(h.args)
	h.args = h.args[:0]
}

func (h *heldTx) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if st, ok := h.stmts[query]; ok {
		return st, nil
	}
	st, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	h.stmts[query] = st
	return st, nil
}

// sqlEventColumns heads the sim_event insert.
const sqlEventColumns = `INSERT OR IGNORE INTO sim_event(id, iccid, kind, provider, provider_type, at,
		status, status_raw, imei, msisdn, sim_type, plan, period,
		has_usage, used_bytes, remaining_bytes, allowed_bytes, unlimited, detail)`

// appendEventArgs appends r's sim_event values in sqlEventColumns order.
func (r *eventRow) appendEventArgs(args []any) []any {
	return append(args, r.id, r.iccid, r.kind, r.provider, r.providerType, r.at,
		r.status, r.statusRaw, r.imei, r.msisdn, r.simType, r.plan, r.period,
		r.hasUsage, r.used, r.remaining, r.allowed, r.unlimited, r.detail)
}

// SimEventInsert is the single-row INSERT of a sim_event row, and
// SimEventArgs its values for ev (false when the timeline keeps nothing
// of ev): the rows Apply writes, for benchmarks that compare a build with
// writing the same rows straight into SQLite.
var SimEventInsert = projection.NewMultiRow(sqlEventColumns, 19, ``).One

// SimEventArgs appends ev's sim_event values for SimEventInsert to args.
func SimEventArgs(args []any, ev *simtrailv1.Event) ([]any, bool) {
	if !keeps(ev) {
		return args, false
	}
	r := rowOf(ev)
	return r.appendEventArgs(args), true
}

var (
	insertEvents = projection.NewMultiRow(sqlEventColumns, 19, `RETURNING id`)
	// A snapshot is written only for a new event, so its key is new too.
	insertSnapshots = projection.NewMultiRow(`INSERT INTO usage_snapshot(event_id, iccid, at, used_bytes, period_id)`, 5, ``)
	addDays         = projection.NewMultiRow(`INSERT INTO usage_day(iccid, day, bytes)`, 3,
		`ON CONFLICT(iccid, day) DO UPDATE SET bytes = bytes + excluded.bytes`)
	upsertDays = projection.NewMultiRow(`INSERT INTO daily_usage(iccid, day, location, data_bytes, snap_at, snap_id)`, 6,
		`ON CONFLICT(iccid, day, location) DO UPDATE SET
			data_bytes = excluded.data_bytes, snap_at = excluded.snap_at, snap_id = excluded.snap_id
		WHERE excluded.snap_at > daily_usage.snap_at
		   OR (excluded.snap_at = daily_usage.snap_at AND excluded.snap_id > daily_usage.snap_id)`)
)

// The statements for a snapshot older than its SIM's newest stored one
// (it arrived late), with ?1..?5 its iccid, at, event id, used bytes and
// period id, run right after it is inserted: what the usage_day triggers
// of migration 00002 ran for every snapshot. sqlLateDay adds the
// snapshot's delta over its predecessor to its day; sqlLateNext re-takes
// its successor's delta against it and adds the difference to the
// successor's day (a reset, a counter drop or a change between two known
// period ids, counts the new value in full).
const (
	sqlLastSnapshot = `SELECT at, event_id, used_bytes, period_id FROM usage_snapshot
		WHERE iccid = ? ORDER BY at DESC, event_id DESC LIMIT 1`
	sqlLateDay = `INSERT INTO usage_day(iccid, day, bytes)
	VALUES (?1, (?2 - CASE WHEN ?2 < 0 THEN 86399999999999 ELSE 0 END) / 86400000000000,
		?4 - coalesce((SELECT CASE WHEN ?4 >= p.used_bytes
				AND NOT (p.period_id <> '' AND ?5 <> '' AND p.period_id <> ?5)
				THEN p.used_bytes ELSE 0 END
			FROM usage_snapshot AS p
			WHERE p.iccid = ?1 AND (p.at, p.event_id) < (?2, ?3)
			ORDER BY p.at DESC, p.event_id DESC LIMIT 1), 0))
	ON CONFLICT(iccid, day) DO UPDATE SET bytes = bytes + excluded.bytes`
	sqlLateNext = `INSERT INTO usage_day(iccid, day, bytes)
	SELECT ?1, (n.at - CASE WHEN n.at < 0 THEN 86399999999999 ELSE 0 END) / 86400000000000,
		(CASE WHEN n.used_bytes >= ?4
			AND NOT (?5 <> '' AND n.period_id <> '' AND ?5 <> n.period_id)
			THEN n.used_bytes - ?4 ELSE n.used_bytes END)
		- (CASE WHEN p.used_bytes IS NOT NULL AND n.used_bytes >= p.used_bytes
			AND NOT (p.period_id <> '' AND n.period_id <> '' AND p.period_id <> n.period_id)
			THEN n.used_bytes - p.used_bytes ELSE n.used_bytes END)
	FROM (SELECT at, used_bytes, period_id FROM usage_snapshot
			WHERE iccid = ?1 AND (at, event_id) > (?2, ?3)
			ORDER BY at, event_id LIMIT 1) AS n
		LEFT JOIN (SELECT used_bytes, period_id FROM usage_snapshot
			WHERE iccid = ?1 AND (at, event_id) < (?2, ?3)
			ORDER BY at DESC, event_id DESC LIMIT 1) AS p
	WHERE true
	ON CONFLICT(iccid, day) DO UPDATE SET bytes = bytes + excluded.bytes`
)

// snapDelta is the usage s shows over its predecessor prev (nil: none).
func snapDelta(prev, s *snapRow) int64 {
	if prev == nil {
		return s.used
	}
	return counterDelta(prev.used, prev.periodID, s.used, s.periodID)
}

// chunks writes rows [0, n) with q, projection.RowsPerStatement per
// statement and then one each, with bind appending row i's values to args.
func (h *heldTx) chunks(ctx context.Context, tx *sql.Tx, q projection.MultiRow, n int,
	bind func(args []any, i int) []any, run func(st *sql.Stmt, args []any, first, count int) error) error {
	return q.Chunks(n, func(query string, first, count int) error {
		st, err := h.stmt(ctx, tx, query)
		if err != nil {
			return err
		}
		h.args = h.args[:0]
		for i := first; i < first+count; i++ {
			h.args = bind(h.args, i)
		}
		return run(st, h.args, first, count)
	})
}

func execRun(st *sql.Stmt, args []any, _, _ int) error {
	_, err := st.Exec(args...)
	return err
}

// flush writes what h holds in tx and empties it; on an error the caller
// (the runner) rolls back what this transaction or event wrote, and the
// snapshot cache, which may have seen some of it, is cleared.
func (h *heldTx) flush(ctx context.Context, tx *sql.Tx) (err error) {
	defer func() {
		h.reset()
		if err != nil && h.last != nil {
			h.last.reset()
		}
	}()
	if len(h.rows) == 0 {
		return nil
	}
	if err := h.insertEvents(ctx, tx); err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	rows := h.rows
	for i := range rows {
		if !h.fresh[i] {
			continue // a copy of an event already applied
		}
		r := &rows[i]
		if r.snapUsed != nil {
			h.snaps = append(h.snaps, snapRow{iccid: r.iccid, at: r.at, id: r.id, used: *r.snapUsed, periodID: r.periodID})
		}
		for _, d := range r.daily {
			k := dayKey{r.iccid, d.GetDate(), d.GetLocation()}
			if old, ok := h.daily[k]; ok && (old.at > r.at || old.at == r.at && old.id >= r.id) {
				continue // the row already held is newer (or, within one event, first)
			}
			h.daily[k] = dayVal{bytes: d.GetDataBytes(), at: r.at, id: r.id}
		}
	}
	if err := h.foldSnapshots(ctx, tx); err != nil {
		return err
	}
	for k, v := range h.daily {
		h.dailyS = append(h.dailyS, dayRow{k, v})
	}
	slices.SortFunc(h.dailyS, func(a, b dayRow) int {
		return cmp.Or(cmp.Compare(a.k.iccid, b.k.iccid), cmp.Compare(a.k.day, b.k.day), cmp.Compare(a.k.location, b.k.location))
	})
	if err := h.chunks(ctx, tx, upsertDays, len(h.dailyS), func(args []any, i int) []any {
		d := &h.dailyS[i]
		return append(args, d.k.iccid, d.k.day, d.k.location, d.v.bytes, d.v.at, d.v.id)
	}, execRun); err != nil {
		return fmt.Errorf("upsert usage days: %w", err)
	}
	return nil
}

// insertEvents writes the held sim_event rows, sorted by id, and sets
// h.fresh[i] for each row i that was new. Of several copies of one event
// in the transaction only the first in stream order is offered (the sort
// keeps stream order among equal ids).
func (h *heldTx) insertEvents(ctx context.Context, tx *sql.Tx) error {
	rows := h.rows
	h.order = h.order[:0]
	for i := range rows {
		h.order = append(h.order, i)
	}
	slices.SortFunc(h.order, func(a, b int) int { return cmp.Or(cmp.Compare(rows[a].id, rows[b].id), cmp.Compare(a, b)) })
	h.order = slices.CompactFunc(h.order, func(a, b int) bool { return rows[a].id == rows[b].id })
	h.fresh = slices.Grow(h.fresh[:0], len(rows))[:len(rows)]
	clear(h.fresh)
	var id sql.RawBytes
	return h.chunks(ctx, tx, insertEvents, len(h.order), func(args []any, i int) []any {
		return rows[h.order[i]].appendEventArgs(args)
	}, func(st *sql.Stmt, args []any, first, count int) error {
		res, err := st.Query(args...)
		if err != nil {
			return err
		}
		defer res.Close()
		chunk := h.order[first : first+count]
		for res.Next() {
			if err := res.Scan(&id); err != nil {
				return err
			}
			// The chunk is sorted by id, and its ids are unique.
			// unsafe.String: the bytes are only compared, not kept
			// (a string per returned id was 4 % of a build's garbage).
			key := unsafe.String(unsafe.SliceData(id), len(id))
			j, ok := slices.BinarySearchFunc(chunk, key, func(i int, key string) int {
				return strings.Compare(rows[i].id, key)
			})
			if !ok {
				return fmt.Errorf("unexpected id %q returned", id)
			}
			h.fresh[chunk[j]] = true
		}
		return res.Err()
	})
}

// foldSnapshots writes the new snapshots h.snaps and their usage into
// usage_day. usage_day holds, per SIM and day, the sum of every
// snapshot's delta over its predecessor in (at, event id) order. Per SIM,
// the new snapshots after its newest stored one (nearly all: providers
// send in order) are folded here in Go from that newest one on, summed
// per day and written in a few multi-row statements; each of the few
// older ones (late arrivals) is inserted alone and its effect on its own
// day and on its successor's taken by sqlLateDay and sqlLateNext, against
// what is stored, before the newer ones are written (they sort after
// every late one, so neither sees them).
func (h *heldTx) foldSnapshots(ctx context.Context, tx *sql.Tx) error {
	snaps := h.snaps
	slices.SortFunc(snaps, func(a, b snapRow) int {
		return cmp.Or(cmp.Compare(a.iccid, b.iccid), cmp.Compare(a.at, b.at), cmp.Compare(a.id, b.id))
	})
	// inOrder collects the new snapshots after their SIM's newest stored
	// one, in place: it never grows past the snapshot being read.
	inOrder := snaps[:0]
	for lo := 0; lo < len(snaps); {
		iccid := snaps[lo].iccid
		hi := lo + 1
		for hi < len(snaps) && snaps[hi].iccid == iccid {
			hi++
		}
		sim := snaps[lo:hi]
		last, err := h.lastSnapshot(ctx, tx, iccid)
		if err != nil {
			return err
		}
		prev := last
		for i := range sim {
			s := sim[i]
			if last != nil && !s.after(last) {
				if err := h.insertLate(ctx, tx, &s); err != nil {
					return err
				}
				continue
			}
			k := dayNum{s.iccid, dayOf(time.Unix(0, s.at))}
			h.days[k] += snapDelta(prev, &s)
			inOrder = append(inOrder, s)
			prev = &inOrder[len(inOrder)-1]
		}
		if h.last != nil && prev != nil {
			h.last.set(iccid, cachedSnap{*prev, true})
		}
		lo = hi
	}
	if err := h.chunks(ctx, tx, insertSnapshots, len(inOrder), func(args []any, i int) []any {
		s := &inOrder[i]
		return append(args, s.id, s.iccid, s.at, s.used, s.periodID)
	}, execRun); err != nil {
		return fmt.Errorf("insert usage snapshots: %w", err)
	}
	for k, b := range h.days {
		h.daysS = append(h.daysS, dayNumRow{k, b})
	}
	slices.SortFunc(h.daysS, func(a, b dayNumRow) int {
		return cmp.Or(cmp.Compare(a.k.iccid, b.k.iccid), cmp.Compare(a.k.day, b.k.day))
	})
	// Every day gets its row, even with nothing to add (a first snapshot
	// of 0 bytes): the triggers wrote them so, and the SIM-known marker
	// of the usage answer reads them.
	if err := h.chunks(ctx, tx, addDays, len(h.daysS), func(args []any, i int) []any {
		d := &h.daysS[i]
		return append(args, d.k.iccid, d.k.day, d.bytes)
	}, execRun); err != nil {
		return fmt.Errorf("add usage days: %w", err)
	}
	return nil
}

// lastSnapshot is the SIM's newest stored snapshot, or nil when it has
// none, from the cache when it holds the SIM.
func (h *heldTx) lastSnapshot(ctx context.Context, tx *sql.Tx, iccid string) (*snapRow, error) {
	if h.last != nil {
		if c, ok := h.last.bySIM[iccid]; ok {
			if !c.has {
				return nil, nil
			}
			return &c.s, nil
		}
	}
	st, err := h.stmt(ctx, tx, sqlLastSnapshot)
	if err != nil {
		return nil, err
	}
	s := snapRow{iccid: iccid}
	err = st.QueryRow(iccid).Scan(&s.at, &s.id, &s.used, &s.periodID)
	switch {
	case err == sql.ErrNoRows:
		if h.last != nil {
			h.last.set(iccid, cachedSnap{})
		}
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read newest usage snapshot: %w", err)
	}
	if h.last != nil {
		h.last.set(iccid, cachedSnap{s, true})
	}
	return &s, nil
}

// insertLate writes a snapshot older than its SIM's newest stored one and
// its usage.
func (h *heldTx) insertLate(ctx context.Context, tx *sql.Tx, s *snapRow) error {
	row := []any{s.id, s.iccid, s.at, s.used, s.periodID}  // insertSnapshots' columns
	fold := []any{s.iccid, s.at, s.id, s.used, s.periodID} // ?1..?5 of sqlLateDay and sqlLateNext
	for _, q := range []struct {
		sql  string
		args []any
	}{{insertSnapshots.One, row}, {sqlLateDay, fold}, {sqlLateNext, fold}} {
		st, err := h.stmt(ctx, tx, q.sql)
		if err != nil {
			return err
		}
		if _, err := st.Exec(q.args...); err != nil {
			return fmt.Errorf("insert late usage snapshot: %w", err)
		}
	}
	return nil
}
