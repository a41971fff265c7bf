package thresholds

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/simtrail/simtrail/pkg/jsonx"
)

// store writes the read model inside one Apply transaction.
type store struct {
	tx *sql.Tx
	e  *txEntry
}

func nullInt(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// touchPool creates the pool row and applies the newest-wins pool name.
// Ties on provider time are broken by the larger event id so the outcome
// never depends on arrival order. It returns the pool's current (as_of,
// event) as stored before this event's usage is merged.
func (s store) touchPool(ctx context.Context, o *observation) (current, error) {
	var cur current
	var name, nameAt, nameEv any
	if o.name != "" {
		name, nameAt, nameEv = o.name, o.at, o.eventID
	}
	const newer = `excluded.name IS NOT NULL AND (pool_state.name_at IS NULL OR (excluded.name_at, excluded.name_event) > (pool_state.name_at, pool_state.name_event))`
	err := s.queryRow(ctx, `INSERT INTO pool_state(pool_id, provider, name, name_at, name_event) VALUES(?, ?, ?, ?, ?)
		ON CONFLICT(pool_id) DO UPDATE SET
			name = CASE WHEN `+newer+` THEN excluded.name ELSE pool_state.name END,
			name_at = CASE WHEN `+newer+` THEN excluded.name_at ELSE pool_state.name_at END,
			name_event = CASE WHEN `+newer+` THEN excluded.name_event ELSE pool_state.name_event END
		RETURNING as_of, as_of_event`, o.key, o.provider, name, nameAt, nameEv).Scan(&cur.asOf, &cur.event)
	if err != nil {
		return cur, fmt.Errorf("upsert pool: %w", err)
	}
	return cur, nil
}

// simRow is a SIM's whole sim_state row as the row cache holds it: Apply
// merges each event into it in Go and holds the changed row back, so a
// SIM is written once per transaction (FlushTx), not once per event.
type simRow struct {
	provider                 string
	status                   sql.NullString
	statusAt                 sql.NullInt64
	statusEv                 sql.NullString
	imei                     sql.NullString
	imeiAt                   sql.NullInt64
	imeiEv                   sql.NullString
	periodKey                sql.NullString
	periodStart, periodEnd   sql.NullInt64
	cur                      current
	used, allowed, remaining sql.NullInt64
	unlimited                bool
	percent                  sql.NullFloat64
	sortPct                  float64
	ended                    bool
	lastLevel                sql.NullInt64
	levelsJSON               string
}

// simColumns are sim_state's columns in simRow.args order.
const simColumns = `iccid, provider, status, status_at, status_event, imei, imei_at, imei_event,
	period_key, period_start, period_end, as_of, as_of_event, used, allowed, remaining,
	unlimited, percent, sort_pct, ended, last_level, levels_json`

// args appends the row's values in simColumns order.
func (r *simRow) args(args []any, iccid string) []any {
	return append(args, iccid, r.provider, r.status, r.statusAt, r.statusEv, r.imei, r.imeiAt, r.imeiEv,
		r.periodKey, r.periodStart, r.periodEnd, r.cur.asOf, r.cur.event, r.used, r.allowed, r.remaining,
		r.unlimited, r.percent, r.sortPct, r.ended, r.lastLevel, r.levelsJSON)
}

// readSIM returns the SIM's cached entry, reading its state row on a
// miss. A SIM seen for the first time gets a new row (the schema's
// defaults), written at FlushTx.
func (s store) readSIM(ctx context.Context, o *observation) (*subjectRows, error) {
	sub := s.e.rows.subject(subjectSIM, o.key)
	if sub.stateKnown {
		return sub, nil
	}
	var r simRow
	err := s.queryRow(ctx, `SELECT `+simColumns+` FROM sim_state WHERE iccid = ?`, o.key).
		Scan(new(string), &r.provider, &r.status, &r.statusAt, &r.statusEv, &r.imei, &r.imeiAt, &r.imeiEv,
			&r.periodKey, &r.periodStart, &r.periodEnd, &r.cur.asOf, &r.cur.event, &r.used, &r.allowed, &r.remaining,
			&r.unlimited, &r.percent, &r.sortPct, &r.ended, &r.lastLevel, &r.levelsJSON)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		r = simRow{provider: o.provider, sortPct: -1, levelsJSON: "[]"}
		sub.stateNew = true
		// A SIM's periods are written with or after its state row: it
		// has none.
		sub.complete = true
		s.e.held.holdSIM(o.key, sub)
	case err != nil:
		return nil, fmt.Errorf("read sim: %w", err)
	default:
		sub.stored = r
	}
	sub.state, sub.stateKnown = r, true
	return sub, nil
}

// newer reports whether (at, ev) is newer than the stored version.
func newer(at int64, ev string, vAt sql.NullInt64, vEv sql.NullString) bool {
	return !vAt.Valid || at > vAt.Int64 || at == vAt.Int64 && ev > vEv.String
}

// current is a subject's current period position: the newest snapshot's
// (provider time, event id), unset before the first snapshot.
type current struct {
	asOf  sql.NullInt64
	event sql.NullString
}

// upsertPeriod merges the observation into its (subject, period) row: the
// snapshot columns follow the newest (as_of, event id); start is the
// earliest and end the latest stated; ended and max_reported only grow.
//
// The merge runs in Go on the cached row (read once on a miss), and only
// a changed row is held to be written at FlushTx, with the forecast point
// of o. It returns the merged row.
func (s store) upsertPeriod(ctx context.Context, o *observation, sub *subjectRows) (*periodRows, error) {
	x := observed(o)
	pr := sub.periods[o.periodKey]
	if pr == nil && !sub.complete {
		var r periodRow
		err := s.queryRow(ctx, `SELECT start_at, end_at, as_of, as_of_event, snap_at, snap_event,
				used, allowed, remaining, unlimited, percent, max_reported, ended
			FROM period WHERE subject_type = ? AND subject_key = ? AND period_key = ?`, o.subjectType, o.key, o.periodKey).
			Scan(&r.start, &r.end, &r.asOf, &r.asOfEvent, &r.snapAt, &r.snapEvent,
				&r.used, &r.allowed, &r.remaining, &r.unlimited, &r.percent, &r.maxReported, &r.ended)
		switch {
		case err == nil:
			r.key = o.periodKey
			pr = &periodRows{row: r}
			sub.periods[o.periodKey] = pr
		case !errors.Is(err, sql.ErrNoRows):
			return nil, fmt.Errorf("read period: %w", err)
		}
	}
	switch {
	case pr == nil:
		// Levels are written after their period: a new one has none.
		pr = &periodRows{row: x, levels: map[int]levelMark{}}
		sub.periods[o.periodKey] = pr
		s.e.held.holdPeriod(o, sub, pr, true)
	default:
		if m := pr.row.merge(&x); m != pr.row {
			pr.row = m
			pr.version++
			s.e.held.holdPeriod(o, sub, pr, false)
		}
	}
	if o.used != nil {
		s.e.held.snapshots = append(s.e.held.snapshots,
			snapshotRow{st: o.subjectType, key: o.key, period: o.periodKey, at: o.at, event: o.eventID, used: *o.used})
	}
	return pr, nil
}

// observed is the period row o alone makes.
func observed(o *observation) periodRow {
	toNull := func(p *int64) sql.NullInt64 {
		if p == nil {
			return sql.NullInt64{}
		}
		return sql.NullInt64{Int64: *p, Valid: true}
	}
	r := periodRow{key: o.periodKey, start: toNull(o.start), end: toNull(o.end), asOf: o.at, asOfEvent: o.eventID,
		used: toNull(o.used), allowed: toNull(o.allowed), remaining: toNull(o.remaining), unlimited: o.unlimited, ended: o.ended}
	if p := o.percent(); p != nil {
		r.percent = sql.NullFloat64{Float64: *p, Valid: true}
	}
	if o.reportedPercent != nil {
		r.maxReported = sql.NullInt64{Int64: int64(*o.reportedPercent), Valid: true}
	}
	// An observation without volumes (a Truphone report without
	// current_balance, a legacy SUBSCRIPTION_END) can make its period
	// current but does not blank the volumes an older snapshot stated.
	if o.hasVolumes() {
		r.snapAt = sql.NullInt64{Int64: o.at, Valid: true}
		r.snapEvent = sql.NullString{String: o.eventID, Valid: true}
	}
	return r
}

// merge is r merged with x, another observation of the same period: the
// snapshot columns follow the newest (snap_at, snap_event), the period
// position the newest (as_of, as_of_event); start is the earliest and end
// the latest stated; ended and max_reported only grow. Every rule is
// commutative and idempotent.
func (r periodRow) merge(x *periodRow) periodRow {
	m := r
	m.start = pick(r.start, x.start, func(a, b int64) bool { return a < b })
	m.end = pick(r.end, x.end, func(a, b int64) bool { return a > b })
	m.maxReported = pick(r.maxReported, x.maxReported, func(a, b int64) bool { return a > b })
	m.ended = r.ended || x.ended
	if x.snapAt.Valid && (!r.snapAt.Valid || x.snapAt.Int64 > r.snapAt.Int64 ||
		x.snapAt.Int64 == r.snapAt.Int64 && x.snapEvent.String > r.snapEvent.String) {
		m.snapAt, m.snapEvent = x.snapAt, x.snapEvent
		m.used, m.allowed, m.remaining, m.unlimited, m.percent = x.used, x.allowed, x.remaining, x.unlimited, x.percent
	}
	if x.asOf > r.asOf || x.asOf == r.asOf && x.asOfEvent > r.asOfEvent {
		m.asOf, m.asOfEvent = x.asOf, x.asOfEvent
	}
	return m
}

// pick is the stated one of a and b, or when both are stated the one
// better says is better.
func pick(a, b sql.NullInt64, better func(x, y int64) bool) sql.NullInt64 {
	if !a.Valid || b.Valid && better(b.Int64, a.Int64) {
		return b
	}
	return a
}

func sourceRank(src string) int {
	if src == sourceProvider {
		return 0
	}
	return 1
}

// levelMark is the stored showing of one crossed level: the smallest
// (crossed_at, source rank, event id) seen so far.
type levelMark struct {
	at    int64
	rank  int
	event string
}

func (m levelMark) less(n levelMark) bool {
	if m.at != n.at {
		return m.at < n.at
	}
	if m.rank != n.rank {
		return m.rank < n.rank
	}
	return m.event < n.event
}

// levels reads the crossed levels of one (subject, period) into pr.
//
// The map stays in the cache; cross updates it in place as it writes, so
// it keeps mirroring the stored rows.
func (s store) levels(ctx context.Context, o *observation, pr *periodRows) (map[int]levelMark, error) {
	if pr.levels != nil {
		return pr.levels, nil
	}
	rows, err := s.query(ctx, `SELECT level, crossed_at, source_rank, event_id FROM level
		WHERE subject_type = ? AND subject_key = ? AND period_key = ?`, o.subjectType, o.key, o.periodKey)
	if err != nil {
		return nil, fmt.Errorf("read levels: %w", err)
	}
	defer rows.Close()
	out := map[int]levelMark{}
	for rows.Next() {
		var l int
		var m levelMark
		if err := rows.Scan(&l, &m.at, &m.rank, &m.event); err != nil {
			return nil, fmt.Errorf("scan level: %w", err)
		}
		out[l] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read levels: %w", err)
	}
	pr.levels = out
	return out, nil
}

// cross merges the levels o shows crossed into have (the period's stored
// levels) and holds only what changes to be written at FlushTx: a level
// row keeps the smallest (crossed_at, source rank, event id) over every
// showing, so the result is the same in any arrival order. A level seen
// for the first time also gets its outbox row, in this transaction: the
// first showing in stream order announces it, exactly once per (subject,
// period, level).
func (s store) cross(o *observation, cs []crossing, seq uint64, sub *subjectRows, pr *periodRows) {
	have := pr.levels
	for _, c := range cs {
		m := levelMark{at: o.at, rank: sourceRank(c.source), event: o.eventID}
		old, ok := have[c.level]
		if ok && !m.less(old) {
			continue
		}
		have[c.level] = m
		pr.version++
		// The level row is written with its final mark at FlushTx, and
		// a new level's outbox row after it, in this event's order.
		s.e.held.holdLevel(o, sub, pr, c.level, !ok)
		if !ok {
			s.e.held.outbox = append(s.e.held.outbox, outboxInsertRow(o, c, seq))
		}
	}
}

func (s store) addAlert(o *observation) {
	s.e.held.alerts = append(s.e.held.alerts, alertRow{st: o.subjectType, key: o.key, event: o.eventID, at: o.at, alert: *o.alert})
}

// LevelState is one configured level of the current period.
type LevelState struct {
	Percent   int     `json:"percent"`
	Crossed   bool    `json:"crossed"`
	CrossedAt *string `json:"crossed_at"`
	Source    *string `json:"source"`
}

type periodRow struct {
	key                      string
	start, end               sql.NullInt64
	asOf                     int64
	asOfEvent                string
	used, allowed, remaining sql.NullInt64
	unlimited, ended         bool
	percent                  sql.NullFloat64
	maxReported              sql.NullInt64
	snapAt                   sql.NullInt64
	snapEvent                sql.NullString
}

func levelStates(have map[int]levelMark, r *periodRow, levels []int) ([]LevelState, *int64) {
	out := make([]LevelState, 0, len(levels))
	if r.unlimited {
		return out, nil
	}
	var last *int64
	for _, l := range levels {
		ls := LevelState{Percent: l}
		if g, ok := have[l]; ok {
			at := fmtTime(g.at)
			src := sourceComputed
			if g.rank == 0 {
				src = sourceProvider
			}
			ls.Crossed, ls.CrossedAt, ls.Source = true, &at, &src
			v := int64(l)
			last = &v
		}
		out = append(out, ls)
	}
	return out, last
}

// percentOf is the period's percent used: from the newest snapshot, or
// the highest percentage a provider reported in the period when the newest
// snapshot states none (Truphone reports a level, not the volumes).
func (r *periodRow) percentOf() *float64 {
	if r.unlimited {
		return nil
	}
	if r.percent.Valid {
		v := r.percent.Float64
		return &v
	}
	if r.maxReported.Valid {
		v := float64(r.maxReported.Int64)
		return &v
	}
	return nil
}

// isCurrent reports whether r, the merged row of the period this event
// touched, is (now) the subject's current period: the one with the newest
// observation. Only r's period changed, so if it is not current, the
// current period and so the state row are unchanged.
func (r *periodRow) isCurrent(cur current) bool {
	return !cur.asOf.Valid || r.asOf > cur.asOf.Int64 || r.asOf == cur.asOf.Int64 && r.asOfEvent >= cur.event.String
}

// stateOf derives the denormalised numbers of a current period.
func stateOf(r *periodRow, have map[int]levelMark, levels []int) (lj string, last *int64, pct any, sortPct float64, remaining sql.NullInt64, err error) {
	ls, last := levelStates(have, r, levels)
	sortPct = -1
	if p := r.percentOf(); p != nil {
		pct, sortPct = *p, *p
	}
	remaining = r.remaining
	if !remaining.Valid && r.allowed.Valid && r.used.Valid {
		remaining = sql.NullInt64{Int64: max(r.allowed.Int64-r.used.Int64, 0), Valid: true}
	}
	return levelsJSON(ls), last, pct, sortPct, remaining, nil
}

// levelsJSON is json.Marshal(ls), appended by hand: it runs for every
// event that moves a SIM's current period, and the reflective encoder was
// a tenth of a rebuild's allocations (a test holds the two equal).
func levelsJSON(ls []LevelState) string {
	b := make([]byte, 0, 2+len(ls)*88)
	b = append(b, '[')
	for i, l := range ls {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"percent":`...)
		b = strconv.AppendInt(b, int64(l.Percent), 10)
		b = append(b, `,"crossed":`...)
		b = strconv.AppendBool(b, l.Crossed)
		b = append(b, `,"crossed_at":`...)
		b = jsonx.AppendOptString(b, l.CrossedAt)
		b = append(b, `,"source":`...)
		b = jsonx.AppendOptString(b, l.Source)
		b = append(b, '}')
	}
	return string(append(b, ']'))
}

// refreshPool rewrites a pool's state row when r is its current period.
func (s store) refreshPool(ctx context.Context, key string, r *periodRow, cur current, have map[int]levelMark, levels []int) error {
	if !r.isCurrent(cur) {
		return nil
	}
	lj, _, pct, _, _, err := stateOf(r, have, levels)
	if err != nil {
		return err
	}
	if _, err := s.exec(ctx, `UPDATE pool_state SET period_key = ?, as_of = ?, as_of_event = ?, used = ?, allowed = ?, percent = ?, levels_json = ?
		WHERE pool_id = ?`, r.key, r.asOf, r.asOfEvent, r.used, r.allowed, pct, lj, key); err != nil {
		return fmt.Errorf("update pool state: %w", err)
	}
	return nil
}

// writeSIM merges every change this event makes into the SIM's state
// row: a newer status or IMEI (newest provider time wins, ties by event
// id), and the current period when pr is (now) current. A changed row is
// held and written at FlushTx. The columns derived from the current
// period and its levels (volumes, percent, levels_json, ...) are computed
// there too, once per SIM and transaction (deriveSIM): they depend only on
// the current period's row and levels, which the row cache holds with
// their final values of the transaction, so the result is the one the
// last event would have computed.
func (s store) writeSIM(o *observation, sub *subjectRows, pr *periodRows) {
	h := sub.state
	at, ev := sql.NullInt64{Int64: o.at, Valid: true}, sql.NullString{String: o.eventID, Valid: true}
	if o.status != "" && newer(o.at, o.eventID, h.statusAt, h.statusEv) {
		h.status, h.statusAt, h.statusEv = sql.NullString{String: o.status, Valid: true}, at, ev
	}
	if o.imei != "" && newer(o.at, o.eventID, h.imeiAt, h.imeiEv) {
		h.imei, h.imeiAt, h.imeiEv = sql.NullString{String: o.imei, Valid: true}, at, ev
	}
	stale := false
	if pr != nil && pr.row.isCurrent(h.cur) {
		cur := current{asOf: sql.NullInt64{Int64: pr.row.asOf, Valid: true}, event: sql.NullString{String: pr.row.asOfEvent, Valid: true}}
		if cur != h.cur || sub.derivedFrom != pr || sub.derivedVersion != pr.version {
			h.cur = cur
			h.periodKey = sql.NullString{String: pr.row.key, Valid: true}
			sub.derivedFrom, sub.derivedVersion = pr, pr.version
			stale = true
		}
	}
	if h != sub.state || stale {
		sub.state = h
		sub.stateStale = sub.stateStale || stale
		s.e.held.holdSIM(o.key, sub)
	}
}

// deriveSIM fills the state row's columns derived from its current period
// (sub.derivedFrom) and that period's levels.
func deriveSIM(sub *subjectRows, levels []int) error {
	pr := sub.derivedFrom
	if pr == nil || pr.levels == nil {
		// writeSIM loads the levels of a period before it makes it current.
		return errors.New("derive sim state: current period not in the row cache")
	}
	h := &sub.state
	r := &pr.row
	lj, last, pct, sortPct, remaining, err := stateOf(r, pr.levels, levels)
	if err != nil {
		return err
	}
	h.periodStart, h.periodEnd = r.start, r.end
	h.used, h.allowed, h.remaining, h.unlimited = r.used, r.allowed, remaining, r.unlimited
	h.percent = sql.NullFloat64{}
	if f, ok := pct.(float64); ok {
		h.percent = sql.NullFloat64{Float64: f, Valid: true}
	}
	h.ended, h.sortPct, h.levelsJSON = r.ended, sortPct, lj
	h.lastLevel = sql.NullInt64{}
	if last != nil {
		h.lastLevel = sql.NullInt64{Int64: *last, Valid: true}
	}
	sub.stateStale = false
	return nil
}

func fmtTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}
