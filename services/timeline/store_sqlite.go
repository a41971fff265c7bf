package timeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrSIMNotFound means no event about the ICCID has been applied.
var ErrSIMNotFound = errors.New("sim not found")

// reader runs the queries of one request inside one read transaction, so
// every part of an answer comes from the same committed state, or, for an
// answer that one statement gives (singleRead), straight on the pool.
type reader struct {
	q  queryer
	tx *sql.Tx // nil outside a transaction
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// singleRead reads without a transaction: for an answer that one
// statement gives, BEGIN and ROLLBACK were a tenth of its cost.
func singleRead(db *sql.DB) *reader { return &reader{q: db} }

// beginRead starts a request's read transaction (see readCtx).
func beginRead(ctx context.Context, db *sql.DB) (*reader, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("begin read: %w", err)
	}
	return &reader{q: tx, tx: tx}, nil
}

func (r *reader) close() {
	if r.tx != nil {
		_ = r.tx.Rollback()
	}
}

func (r *reader) exists(ctx context.Context, iccid string) error {
	var one int
	err := r.q.QueryRowContext(ctx, `SELECT 1 FROM sim_event WHERE iccid = ? LIMIT 1`, iccid).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrSIMNotFound
	}
	if err != nil {
		return fmt.Errorf("find sim: %w", err)
	}
	return nil
}

// Summary is the JSON of GET /v1/sims/{iccid}.
type Summary struct {
	ICCID       string          `json:"iccid"`
	Provider    string          `json:"provider"`
	Status      *string         `json:"status"`
	StatusAt    *string         `json:"status_at"`
	IMEI        *string         `json:"imei"`
	IMEIAt      *string         `json:"imei_at"`
	MSISDN      *string         `json:"msisdn"`
	SIMType     *string         `json:"sim_type"`
	Plan        json.RawMessage `json:"plan"`
	Period      json.RawMessage `json:"period"`
	FirstEvent  string          `json:"first_event_at"`
	LastEventAt string          `json:"last_event_at"`
	EventsCount int64           `json:"events_count"`
	Usage       *UsageSummary   `json:"usage"`
}

// UsageSummary is the latest usage snapshot by provider time.
type UsageSummary struct {
	UsedBytes      *int64 `json:"used_bytes"`
	RemainingBytes *int64 `json:"remaining_bytes"`
	AllowedBytes   *int64 `json:"allowed_bytes"`
	Unlimited      bool   `json:"unlimited"`
	AsOf           string `json:"as_of"`
}

func nsTime(ns int64) string { return formatTime(time.Unix(0, ns)) }

// latest returns column col of the SIM's newest event (provider time,
// then event id) where col is set, and that event's time.
func (r *reader) latest(ctx context.Context, iccid, col string) (*string, *string, error) {
	var v sql.NullString
	var at int64
	err := r.q.QueryRowContext(ctx, `SELECT `+col+`, at FROM sim_event
		WHERE iccid = ? AND `+col+` IS NOT NULL ORDER BY at DESC, id DESC LIMIT 1`, iccid).Scan(&v, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("latest %s: %w", col, err)
	}
	t := nsTime(at)
	return &v.String, &t, nil
}

func (r *reader) summary(ctx context.Context, iccid string) (*Summary, error) {
	s := &Summary{ICCID: iccid}
	var first, last sql.NullInt64
	err := r.q.QueryRowContext(ctx, `SELECT count(*), min(at), max(at) FROM sim_event WHERE iccid = ?`, iccid).
		Scan(&s.EventsCount, &first, &last)
	if err != nil {
		return nil, fmt.Errorf("count events: %w", err)
	}
	if s.EventsCount == 0 {
		return nil, ErrSIMNotFound
	}
	s.FirstEvent, s.LastEventAt = nsTime(first.Int64), nsTime(last.Int64)
	if err := r.q.QueryRowContext(ctx, `SELECT provider FROM sim_event WHERE iccid = ? ORDER BY at DESC, id DESC LIMIT 1`, iccid).
		Scan(&s.Provider); err != nil {
		return nil, fmt.Errorf("latest provider: %w", err)
	}
	if s.Status, s.StatusAt, err = r.latest(ctx, iccid, "status"); err != nil {
		return nil, err
	}
	if s.IMEI, s.IMEIAt, err = r.latest(ctx, iccid, "imei"); err != nil {
		return nil, err
	}
	if s.MSISDN, _, err = r.latest(ctx, iccid, "msisdn"); err != nil {
		return nil, err
	}
	if s.SIMType, _, err = r.latest(ctx, iccid, "sim_type"); err != nil {
		return nil, err
	}
	plan, _, err := r.latest(ctx, iccid, "plan")
	if err != nil {
		return nil, err
	}
	s.Plan = rawOrNull(plan)
	period, _, err := r.latest(ctx, iccid, "period")
	if err != nil {
		return nil, err
	}
	s.Period = rawOrNull(period)

	var u UsageSummary
	var used, remaining, allowed sql.NullInt64
	var at int64
	err = r.q.QueryRowContext(ctx, `SELECT used_bytes, remaining_bytes, allowed_bytes, unlimited, at FROM sim_event
		WHERE iccid = ? AND has_usage = 1 ORDER BY at DESC, id DESC LIMIT 1`, iccid).
		Scan(&used, &remaining, &allowed, &u.Unlimited, &at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("latest usage: %w", err)
	default:
		u.UsedBytes, u.RemainingBytes, u.AllowedBytes = intPtr(used), intPtr(remaining), intPtr(allowed)
		u.AsOf = nsTime(at)
		s.Usage = &u
	}
	return s, nil
}

func rawOrNull(s *string) json.RawMessage {
	if s == nil {
		return json.RawMessage("null")
	}
	return json.RawMessage(*s)
}

func intPtr(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	return &n.Int64
}

// hasDaily reports whether the provider sent per-day rows for the SIM.
func (r *reader) hasDaily(ctx context.Context, iccid string) (bool, error) {
	var one int
	err := r.q.QueryRowContext(ctx, `SELECT 1 FROM daily_usage WHERE iccid = ? LIMIT 1`, iccid).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("find usage days: %w", err)
	}
	return true, nil
}

// dailySpan is the first and last day with a per-day row.
func (r *reader) dailySpan(ctx context.Context, iccid string) (time.Time, time.Time, error) {
	var lo, hi string
	if err := r.q.QueryRowContext(ctx, `SELECT min(day), max(day) FROM daily_usage WHERE iccid = ?`, iccid).Scan(&lo, &hi); err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("usage day span: %w", err)
	}
	a, err1 := time.Parse(time.DateOnly, lo)
	b, err2 := time.Parse(time.DateOnly, hi)
	if err := errors.Join(err1, err2); err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("usage day span: %w", err)
	}
	return a, b, nil
}

// snapshotSpan is the provider time of the first and last snapshot; ok is
// false when there is none.
func (r *reader) snapshotSpan(ctx context.Context, iccid string) (time.Time, time.Time, bool, error) {
	var lo, hi sql.NullInt64
	if err := r.q.QueryRowContext(ctx, `SELECT min(at), max(at) FROM usage_snapshot WHERE iccid = ?`, iccid).Scan(&lo, &hi); err != nil {
		return time.Time{}, time.Time{}, false, fmt.Errorf("snapshot span: %w", err)
	}
	if !lo.Valid {
		return time.Time{}, time.Time{}, false, nil
	}
	return time.Unix(0, lo.Int64).UTC(), time.Unix(0, hi.Int64).UTC(), true, nil
}

// snapshots returns the snapshot just before from (or nil) and those in
// [from, to), sorted by (provider time, event id).
func (r *reader) snapshots(ctx context.Context, iccid string, from, to time.Time) (*Snapshot, []Snapshot, error) {
	var prev *Snapshot
	var p Snapshot
	var at int64
	err := r.q.QueryRowContext(ctx, `SELECT at, event_id, used_bytes, period_id FROM usage_snapshot
		WHERE iccid = ? AND at < ? ORDER BY at DESC, event_id DESC LIMIT 1`, iccid, from.UnixNano()).
		Scan(&at, &p.EventID, &p.Used, &p.PeriodID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, nil, fmt.Errorf("previous snapshot: %w", err)
	default:
		p.At = time.Unix(0, at).UTC()
		prev = &p
	}
	rows, err := r.q.QueryContext(ctx, `SELECT at, event_id, used_bytes, period_id FROM usage_snapshot
		WHERE iccid = ? AND at >= ? AND at < ? ORDER BY at, event_id`, iccid, from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, nil, fmt.Errorf("list snapshots: %w", err)
	}
	defer rows.Close()
	var out []Snapshot
	for rows.Next() {
		var s Snapshot
		if err := rows.Scan(&at, &s.EventID, &s.Used, &s.PeriodID); err != nil {
			return nil, nil, fmt.Errorf("scan snapshot: %w", err)
		}
		s.At = time.Unix(0, at).UTC()
		out = append(out, s)
	}
	return prev, out, rows.Err()
}

// EventsQuery selects a page of the timeline.
type EventsQuery struct {
	ICCID    string
	From, To *time.Time
	Kinds    []string
	Limit    int
	After    *Cursor
}

// timelineEntry is one row of the timeline before rendering.
type timelineEntry struct {
	id, kind, provider, providerType string
	at                               int64
	detail                           string
	previousIMEI                     sql.NullString
}

func (r *reader) timeline(ctx context.Context, q EventsQuery) ([]timelineEntry, error) {
	var sb strings.Builder
	args := []any{q.ICCID}
	sb.WriteString(`SELECT e.id, e.kind, e.provider, e.provider_type, e.at, e.detail,
		CASE WHEN e.kind = 'imei' THEN (SELECT p.imei FROM sim_event p
			WHERE p.iccid = e.iccid AND p.imei IS NOT NULL AND (p.at, p.id) < (e.at, e.id)
			ORDER BY p.at DESC, p.id DESC LIMIT 1) END
		FROM sim_event e WHERE e.iccid = ? AND e.detail IS NOT NULL`)
	if q.From != nil {
		sb.WriteString(` AND e.at >= ?`)
		args = append(args, q.From.UnixNano())
	}
	if q.To != nil {
		sb.WriteString(` AND e.at < ?`)
		args = append(args, q.To.UnixNano())
	}
	if q.After != nil {
		sb.WriteString(` AND (e.at, e.id) > (?, ?)`)
		args = append(args, q.After.At, q.After.ID)
	}
	if len(q.Kinds) < len(TimelineKinds) {
		sb.WriteString(` AND e.kind IN (?` + strings.Repeat(",?", len(q.Kinds)-1) + `)`)
		for _, k := range q.Kinds {
			args = append(args, k)
		}
	}
	sb.WriteString(` ORDER BY e.at, e.id LIMIT ?`)
	args = append(args, q.Limit+1)
	rows, err := r.q.QueryContext(ctx, sb.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("list timeline: %w", err)
	}
	defer rows.Close()
	var out []timelineEntry
	for rows.Next() {
		var e timelineEntry
		if err := rows.Scan(&e.id, &e.kind, &e.provider, &e.providerType, &e.at, &e.detail, &e.previousIMEI); err != nil {
			return nil, fmt.Errorf("scan timeline: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// dayUsage returns the usage per UTC day in [from, to) (both at midnight
// UTC) as deltas at the start of each day, whether they are the provider's
// per-day rows (a SIM with any daily_usage row answers from those only,
// any other from the snapshot sums in usage_day) and whether the SIM is
// known at all. One statement, so all three come from the same state.
//
// A SIM is known when it has a sim_event row; a usage_day or daily_usage
// row exists only beside one (Apply writes it with its event), so those
// small tables answer first and only a SIM without either costs a seek in
// sim_event's large iccid index (CASE evaluates lazily): that seek was a
// third of the statement's time.
//
// The deltas are appended to buf[:0].
func (r *reader) dayUsage(ctx context.Context, iccid string, from, to time.Time, buf []Delta) (deltas []Delta, daily, known bool, err error) {
	rows, err := r.q.QueryContext(ctx, `
		SELECT 1, CAST(julianday(day) - 2440587.5 AS INTEGER), location, data_bytes FROM daily_usage
			WHERE iccid = ?1 AND day >= ?2 AND day < ?3
		UNION ALL SELECT 2, 0, '', 0 WHERE EXISTS (SELECT 1 FROM daily_usage WHERE iccid = ?1)
		UNION ALL SELECT 0, day, '', bytes FROM usage_day
			WHERE iccid = ?1 AND day >= ?4 AND day < ?5
			AND NOT EXISTS (SELECT 1 FROM daily_usage WHERE iccid = ?1)
		UNION ALL SELECT 3, 0, '', 0 WHERE CASE
			WHEN EXISTS (SELECT 1 FROM usage_day WHERE iccid = ?1) THEN 1
			WHEN EXISTS (SELECT 1 FROM daily_usage WHERE iccid = ?1) THEN 1
			ELSE EXISTS (SELECT 1 FROM sim_event WHERE iccid = ?1) END`,
		iccid, from.Format(time.DateOnly), to.Format(time.DateOnly), dayOf(from), dayOf(to))
	if err != nil {
		return nil, false, false, fmt.Errorf("list usage days: %w", err)
	}
	defer rows.Close()
	deltas = buf[:0]
	// Declared once: Scan's destinations escape, so per row they cost
	// three allocations.
	var tag int
	var day sql.NullInt64
	var loc string
	var n int64
	for rows.Next() {
		if err := rows.Scan(&tag, &day, &loc, &n); err != nil {
			return nil, false, false, fmt.Errorf("scan usage day: %w", err)
		}
		switch {
		case tag == 3:
			known = true
		case tag == 2:
			daily = true
		case !day.Valid:
			// Not a date (the parsers let none through); skipped as before.
		case tag == 1:
			daily = true
			deltas = append(deltas, Delta{At: time.Unix(day.Int64*86400, 0).UTC(), Bytes: n, Location: loc})
		default:
			deltas = append(deltas, Delta{At: time.Unix(day.Int64*86400, 0).UTC(), Bytes: n, Location: UnknownLocation})
		}
	}
	return deltas, daily, known, rows.Err()
}
