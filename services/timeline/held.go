package timeline

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"

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
//     clustering key, so that a SIM's snapshots of the batch and the
//     usage_day triggers' neighbour seeks land on the same leaf pages;
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
	rows      []eventRow
	// ids held in this transaction: a second copy is dropped at once
	// (the first in stream order is the one stored, as without holding).
	ids   map[string]struct{}
	stmts map[string]*sql.Stmt
	// scratch reused by flush
	order  []int
	fresh  []bool
	args   []any
	snaps  []snapRow
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

type dayKey struct{ iccid, day, location string }

type dayVal struct {
	bytes, at int64
	id        string
}

type dayRow struct {
	k dayKey
	v dayVal
}

// heldTxs are the transactions with held writes (a live runner and a
// rebuild may apply through one Projector at once).
type heldTxs struct {
	mu   sync.Mutex
	byTx map[*sql.Tx]*heldTx
}

func newHeldTx(announced bool) *heldTx {
	return &heldTx{announced: announced, ids: map[string]struct{}{}, stmts: map[string]*sql.Stmt{}, daily: map[dayKey]dayVal{}}
}

var (
	_ projection.TxHooks   = (*Projector)(nil)
	_ projection.TxFlusher = (*Projector)(nil)
)

// TxBegun implements projection.TxHooks: tx's writes are held until FlushTx.
func (p *Projector) TxBegun(_ context.Context, tx *sql.Tx, _ *sql.DB) {
	p.held.mu.Lock()
	defer p.held.mu.Unlock()
	if p.held.byTx == nil {
		p.held.byTx = map[*sql.Tx]*heldTx{}
	}
	p.held.byTx[tx] = newHeldTx(true)
}

// TxEnded implements projection.TxHooks: whatever tx still held is void.
func (p *Projector) TxEnded(tx *sql.Tx, _ bool) {
	p.held.mu.Lock()
	defer p.held.mu.Unlock()
	delete(p.held.byTx, tx)
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

// hold adds r to what tx writes at the flush; false for a second copy of
// an event already held.
func (h *heldTx) hold(r eventRow) bool {
	if _, dup := h.ids[r.id]; dup {
		return false
	}
	h.ids[r.id] = struct{}{}
	h.rows = append(h.rows, r)
	return true
}

func (h *heldTx) reset() {
	clear(h.rows)
	h.rows = h.rows[:0]
	clear(h.ids)
	clear(h.snaps)
	h.snaps = h.snaps[:0]
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

var (
	insertEvents = projection.NewMultiRow(sqlEventColumns, 19, `RETURNING id`)
	// A snapshot is written only for a new event, so its key is new too.
	// The usage_snapshot triggers (migration 00002) fold it into usage_day.
	insertSnapshots = projection.NewMultiRow(`INSERT INTO usage_snapshot(event_id, iccid, at, used_bytes, period_id)`, 5, ``)
	upsertDays      = projection.NewMultiRow(`INSERT INTO daily_usage(iccid, day, location, data_bytes, snap_at, snap_id)`, 6,
		`ON CONFLICT(iccid, day, location) DO UPDATE SET
			data_bytes = excluded.data_bytes, snap_at = excluded.snap_at, snap_id = excluded.snap_id
		WHERE excluded.snap_at > daily_usage.snap_at
		   OR (excluded.snap_at = daily_usage.snap_at AND excluded.snap_id > daily_usage.snap_id)`)
)

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
// (the runner) rolls back what this transaction or event wrote.
func (h *heldTx) flush(ctx context.Context, tx *sql.Tx) (err error) {
	defer h.reset()
	if len(h.rows) == 0 {
		return nil
	}
	rows := h.rows
	// Events sorted by id; the insert reports which ids were new.
	h.order = h.order[:0]
	for i := range rows {
		h.order = append(h.order, i)
	}
	slices.SortFunc(h.order, func(a, b int) int { return cmp.Compare(rows[a].id, rows[b].id) })
	h.fresh = slices.Grow(h.fresh[:0], len(rows))[:len(rows)]
	clear(h.fresh)
	var id sql.RawBytes
	err = h.chunks(ctx, tx, insertEvents, len(rows), func(args []any, i int) []any {
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
			// The chunk is sorted by id (ids are unique in h).
			j, ok := slices.BinarySearchFunc(chunk, id, func(i int, id sql.RawBytes) int {
				return strings.Compare(rows[i].id, string(id))
			})
			if !ok {
				return fmt.Errorf("insert event: unexpected id %q returned", id)
			}
			h.fresh[chunk[j]] = true
		}
		return res.Err()
	})
	if err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
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
	slices.SortFunc(h.snaps, func(a, b snapRow) int {
		return cmp.Or(cmp.Compare(a.iccid, b.iccid), cmp.Compare(a.at, b.at), cmp.Compare(a.id, b.id))
	})
	if err := h.chunks(ctx, tx, insertSnapshots, len(h.snaps), func(args []any, i int) []any {
		s := &h.snaps[i]
		return append(args, s.id, s.iccid, s.at, s.used, s.periodID)
	}, execRun); err != nil {
		return fmt.Errorf("insert usage snapshots: %w", err)
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
