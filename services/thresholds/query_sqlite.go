package thresholds

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrNotFound means the SIM or pool has no threshold state.
var ErrNotFound = errors.New("not found")

// PeriodView is the allowance period a SIM's numbers belong to.
type PeriodView struct {
	ID    string  `json:"id"`
	Start *string `json:"start"`
	End   *string `json:"end"`
	AsOf  string  `json:"as_of"`
}

// AlertView is a provider rule alert (no percentage).
type AlertView struct {
	RuleID      string `json:"rule_id"`
	RuleName    string `json:"rule_name"`
	Description string `json:"description"`
	Direction   string `json:"direction"`
	At          string `json:"at"`
}

// SIMView is GET /v1/sims/{iccid}/thresholds.
type SIMView struct {
	ICCID             string       `json:"iccid"`
	Provider          string       `json:"provider"`
	PercentUsed       *float64     `json:"percent_used"`
	AllowedBytes      *int64       `json:"allowed_bytes"`
	UsedBytes         *int64       `json:"used_bytes"`
	RemainingBytes    *int64       `json:"remaining_bytes"`
	Unlimited         bool         `json:"unlimited"`
	Status            *string      `json:"status"`
	IMEI              *string      `json:"imei"`
	SubscriptionEnded bool         `json:"subscription_ended"`
	Period            *PeriodView  `json:"period"`
	Levels            []LevelState `json:"levels"`
	Alerts            []AlertView  `json:"alerts"`
	Forecast          *Forecast    `json:"forecast"`
}

// FleetSIM is one row of GET /v1/thresholds.
type FleetSIM struct {
	ICCID        string   `json:"iccid"`
	Provider     string   `json:"provider"`
	PercentUsed  *float64 `json:"percent_used"`
	UsedBytes    *int64   `json:"used_bytes"`
	AllowedBytes *int64   `json:"allowed_bytes"`
	Status       *string  `json:"status"`
	LastLevel    *int64   `json:"last_level"`
	AsOf         *string  `json:"as_of"`
}

// FleetView is GET /v1/thresholds.
type FleetView struct {
	SIMs       []FleetSIM `json:"sims"`
	NextCursor *string    `json:"next_cursor"`
}

// PoolView is GET /v1/pools/{pool_id}.
type PoolView struct {
	PoolID       string       `json:"pool_id"`
	Provider     string       `json:"provider"`
	Name         *string      `json:"name"`
	UsedBytes    *int64       `json:"used_bytes"`
	AllowedBytes *int64       `json:"allowed_bytes"`
	PercentUsed  *float64     `json:"percent_used"`
	Levels       []LevelState `json:"levels"`
	Alerts       []AlertView  `json:"alerts"`
	AsOf         *string      `json:"as_of"`
}

func i64(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	v := n.Int64
	return &v
}

func str(n sql.NullString) *string {
	if !n.Valid {
		return nil
	}
	v := n.String
	return &v
}

func tsOpt(n sql.NullInt64) *string {
	if !n.Valid {
		return nil
	}
	v := fmtTime(n.Int64)
	return &v
}

// pct rounds a stored percentage to two decimals for display.
func pct(n sql.NullFloat64) *float64 {
	if !n.Valid {
		return nil
	}
	v := math.Round(n.Float64*100) / 100
	return &v
}

// QuerySIM reads one SIM's threshold state.
func QuerySIM(ctx context.Context, db *sql.DB, iccid string) (*SIMView, error) {
	var v SIMView
	var percent sql.NullFloat64
	var used, allowed, remaining, start, end, asOf sql.NullInt64
	var status, imei, periodKey sql.NullString
	var levels string
	err := db.QueryRowContext(ctx, `SELECT iccid, provider, percent, allowed, used, remaining, unlimited, status, imei, ended,
			period_key, period_start, period_end, as_of, levels_json
		FROM sim_state WHERE iccid = ?`, iccid).Scan(&v.ICCID, &v.Provider, &percent, &allowed, &used, &remaining, &v.Unlimited,
		&status, &imei, &v.SubscriptionEnded, &periodKey, &start, &end, &asOf, &levels)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read sim state: %w", err)
	}
	v.PercentUsed, v.AllowedBytes, v.UsedBytes, v.RemainingBytes = pct(percent), i64(allowed), i64(used), i64(remaining)
	v.Status, v.IMEI = str(status), str(imei)
	if periodKey.Valid {
		v.Period = &PeriodView{ID: periodKey.String, Start: tsOpt(start), End: tsOpt(end), AsOf: fmtTime(asOf.Int64)}
	}
	if err := json.Unmarshal([]byte(levels), &v.Levels); err != nil {
		return nil, fmt.Errorf("decode levels: %w", err)
	}
	if periodKey.Valid {
		r := periodRow{key: periodKey.String, asOf: asOf.Int64, used: used, allowed: allowed, remaining: remaining,
			unlimited: v.Unlimited, ended: v.SubscriptionEnded}
		if v.Forecast, err = forecastFor(ctx, db, subjectSIM, iccid, &r); err != nil {
			return nil, err
		}
	}
	if v.Alerts, err = queryAlerts(ctx, db, subjectSIM, iccid); err != nil {
		return nil, err
	}
	return &v, nil
}

func queryAlerts(ctx context.Context, db *sql.DB, st, key string) ([]AlertView, error) {
	rows, err := db.QueryContext(ctx, `SELECT rule_id, rule_name, description, direction, at FROM alert
		WHERE subject_type = ? AND subject_key = ? ORDER BY at, event_id`, st, key)
	if err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	defer rows.Close()
	out := []AlertView{}
	for rows.Next() {
		var a AlertView
		var at int64
		if err := rows.Scan(&a.RuleID, &a.RuleName, &a.Description, &a.Direction, &at); err != nil {
			return nil, fmt.Errorf("scan alert: %w", err)
		}
		a.At = fmtTime(at)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	return out, nil
}

// QueryPool reads one pool's threshold state.
func QueryPool(ctx context.Context, db *sql.DB, poolID string) (*PoolView, error) {
	var v PoolView
	var name sql.NullString
	var used, allowed, asOf sql.NullInt64
	var percent sql.NullFloat64
	var levels string
	err := db.QueryRowContext(ctx, `SELECT pool_id, provider, name, used, allowed, percent, levels_json, as_of
		FROM pool_state WHERE pool_id = ?`, poolID).Scan(&v.PoolID, &v.Provider, &name, &used, &allowed, &percent, &levels, &asOf)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read pool state: %w", err)
	}
	v.Name, v.UsedBytes, v.AllowedBytes, v.PercentUsed, v.AsOf = str(name), i64(used), i64(allowed), pct(percent), tsOpt(asOf)
	if err := json.Unmarshal([]byte(levels), &v.Levels); err != nil {
		return nil, fmt.Errorf("decode levels: %w", err)
	}
	if v.Alerts, err = queryAlerts(ctx, db, subjectPool, poolID); err != nil {
		return nil, err
	}
	return &v, nil
}

// FleetQuery filters and pages the fleet view.
type FleetQuery struct {
	MinPercent *float64
	Provider   string
	Status     string
	Limit      int
	Cursor     string
}

// ErrBadCursor is returned for a cursor this service did not issue.
var ErrBadCursor = errors.New("bad cursor")

// fleetCursor is the keyset position: the last row's (sort_pct, iccid).
// It is opaque to clients (base64url); the float is written with 'g' -1 so
// it round-trips exactly.
func encodeCursor(sortPct float64, iccid string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatFloat(sortPct, 'g', -1, 64) + "|" + iccid))
}

func decodeCursor(c string) (float64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	p, id, ok := strings.Cut(string(b), "|")
	if !ok || id == "" {
		return 0, "", ErrBadCursor
	}
	f, err := strconv.ParseFloat(p, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, "", ErrBadCursor
	}
	return f, id, nil
}

// fleetSQL builds the fleet query. The ORDER BY matches the index
// sim_state_fleet (sort_pct DESC, iccid) — or the provider/status indexes
// when those filters are set — so SQLite walks the index and stops after
// limit+1 rows: no sort, whatever the fleet size.
func fleetSQL(q FleetQuery) (string, []any, error) {
	var where []string
	var args []any
	if q.MinPercent != nil {
		where = append(where, "sort_pct >= ?")
		args = append(args, *q.MinPercent)
	}
	if q.Provider != "" {
		where = append(where, "provider = ?")
		args = append(args, q.Provider)
	}
	if q.Status != "" {
		where = append(where, "status = ?")
		args = append(args, q.Status)
	}
	if q.Cursor != "" {
		p, id, err := decodeCursor(q.Cursor)
		if err != nil {
			return "", nil, err
		}
		where = append(where, "sort_pct <= ? AND (sort_pct < ? OR iccid > ?)")
		args = append(args, p, p, id)
	}
	s := `SELECT iccid, provider, percent, used, allowed, status, last_level, as_of, sort_pct FROM sim_state`
	if len(where) > 0 {
		s += " WHERE " + strings.Join(where, " AND ")
	}
	s += " ORDER BY sort_pct DESC, iccid LIMIT ?"
	args = append(args, q.Limit+1)
	return s, args, nil
}

// QueryFleet reads one page of the fleet view, most used first.
func QueryFleet(ctx context.Context, db *sql.DB, q FleetQuery) (*FleetView, error) {
	s, args, err := fleetSQL(q)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, s, args...)
	if err != nil {
		return nil, fmt.Errorf("query fleet: %w", err)
	}
	defer rows.Close()
	v := &FleetView{SIMs: []FleetSIM{}}
	var lastPct float64
	for rows.Next() {
		var f FleetSIM
		var percent sql.NullFloat64
		var used, allowed, last, asOf sql.NullInt64
		var status sql.NullString
		var sortPct float64
		if err := rows.Scan(&f.ICCID, &f.Provider, &percent, &used, &allowed, &status, &last, &asOf, &sortPct); err != nil {
			return nil, fmt.Errorf("scan fleet: %w", err)
		}
		if len(v.SIMs) == q.Limit {
			prev := v.SIMs[len(v.SIMs)-1]
			c := encodeCursor(lastPct, prev.ICCID)
			v.NextCursor = &c
			break
		}
		f.PercentUsed, f.UsedBytes, f.AllowedBytes, f.Status, f.LastLevel, f.AsOf = pct(percent), i64(used), i64(allowed), str(status), i64(last), tsOpt(asOf)
		v.SIMs = append(v.SIMs, f)
		lastPct = sortPct
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query fleet: %w", err)
	}
	return v, nil
}

// forecastFor computes the forecast of a SIM's current period from its
// usage snapshots within ForecastWindow of the newest one. It runs at read
// time: only the asked SIM pays for it, and the result depends only on
// stored provider times, never on the clock.
func forecastFor(ctx context.Context, db *sql.DB, st, key string, r *periodRow) (*Forecast, error) {
	if r.unlimited || r.ended {
		return nil, nil
	}
	var remaining int64
	switch {
	case r.allowed.Valid && r.used.Valid:
		remaining = r.allowed.Int64 - r.used.Int64
	case r.remaining.Valid && r.used.Valid:
		remaining = r.remaining.Int64
	default:
		return nil, nil
	}
	rows, err := db.QueryContext(ctx, `SELECT at, used FROM snapshot
		WHERE subject_type = ? AND subject_key = ? AND period_key = ? AND at >= ? AND at <= ?`,
		st, key, r.key, r.asOf-int64(ForecastWindow), r.asOf)
	if err != nil {
		return nil, fmt.Errorf("read snapshots: %w", err)
	}
	defer rows.Close()
	var pts []point
	for rows.Next() {
		var p point
		if err := rows.Scan(&p.at, &p.used); err != nil {
			return nil, fmt.Errorf("scan snapshot: %w", err)
		}
		pts = append(pts, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read snapshots: %w", err)
	}
	return forecast(pts, r.asOf, remaining), nil
}
