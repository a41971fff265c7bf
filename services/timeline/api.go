package timeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/simtrail/simtrail/pkg/httpx"
	"github.com/simtrail/simtrail/pkg/projection"
)

// Routes registers the timeline query API on e. Every route is wrapped
// with the runner's middleware (X-Projection-Position, min_position) and
// reads from the runner's current database, fetched per request because a
// rebuild may swap it.
func Routes(e *echo.Echo, r *projection.Runner) {
	h := &handlers{r: r}
	mw := r.Middleware()
	e.GET("/v1/sims/:iccid", h.summary, mw)
	e.GET("/v1/sims/:iccid/usage", h.usage, mw)
	e.GET("/v1/sims/:iccid/events", h.events, mw)
}

type handlers struct {
	r *projection.Runner
}

func errNotFound(iccid string) error {
	return httpx.NotFound("sim_not_found", "no events about SIM "+iccid+" have been applied")
}

// readCtx is the context of a request's reads: the request's values
// without its cancellation. go-sqlite3 runs each statement under a
// cancellable context on a goroutine of its own (BEGIN through a prepared
// statement), which costs more than the few index seeks an answer takes;
// a client that leaves mid-request costs at most that one short read.
func readCtx(c echo.Context) context.Context { return context.WithoutCancel(c.Request().Context()) }

func pathICCID(c echo.Context) (string, error) {
	iccid := c.Param("iccid")
	if !ValidICCID(iccid) {
		return "", httpx.BadRequest("bad_iccid", "iccid must be 1 to 22 digits")
	}
	return iccid, nil
}

func (h *handlers) open(c echo.Context) (*reader, string, error) {
	iccid, err := pathICCID(c)
	if err != nil {
		return nil, "", err
	}
	rd, err := beginRead(readCtx(c), h.r.DB().Reader)
	if err != nil {
		return nil, "", err
	}
	return rd, iccid, nil
}

// openSIM is open for a SIM that must exist: an unknown ICCID is a 404.
func (h *handlers) openSIM(c echo.Context) (*reader, string, error) {
	rd, iccid, err := h.open(c)
	if err != nil {
		return nil, "", err
	}
	if err := rd.exists(readCtx(c), iccid); err != nil {
		rd.close()
		if errors.Is(err, ErrSIMNotFound) {
			return nil, "", errNotFound(iccid)
		}
		return nil, "", err
	}
	return rd, iccid, nil
}

func (h *handlers) summary(c echo.Context) error {
	rd, iccid, err := h.open(c)
	if err != nil {
		return err
	}
	defer rd.close()
	s, err := rd.summary(readCtx(c), iccid)
	if errors.Is(err, ErrSIMNotFound) {
		return errNotFound(iccid)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s)
}

// UsageResponse is the JSON of GET /v1/sims/{iccid}/usage.
type UsageResponse struct {
	ICCID       string      `json:"iccid"`
	Granularity Granularity `json:"granularity"`
	// From and To are the effective range: the request's, widened to
	// bucket boundaries, or the SIM's usage history when not given.
	From           *string  `json:"from"`
	To             *string  `json:"to"`
	Source         string   `json:"source"`
	Buckets        []Bucket `json:"buckets"`
	TotalDataBytes int64    `json:"total_data_bytes"`
}

// Usage sources.
const (
	SourceDaily     = "daily_records"
	SourceSnapshots = "snapshots"
)

// usageParams are the validated query parameters of a usage request.
type usageParams struct {
	g          Granularity
	from, to   *time.Time
	byLocation bool
}

func parseUsageParams(q func(string) string) (usageParams, error) {
	var p usageParams
	var ok bool
	if p.g, ok = ParseGranularity(q("granularity")); !ok {
		return p, httpx.BadRequest("bad_granularity", "granularity must be hour, day or month")
	}
	switch q("group_by") {
	case "":
	case "location":
		p.byLocation = true
	default:
		return p, httpx.BadRequest("bad_group_by", "group_by must be location")
	}
	var err error
	if p.from, err = optTime(q("from")); err != nil {
		return p, httpx.BadRequest("bad_from", "from: "+err.Error())
	}
	if p.to, err = optTime(q("to")); err != nil {
		return p, httpx.BadRequest("bad_to", "to: "+err.Error())
	}
	if p.from != nil && p.to != nil && !p.from.Before(*p.to) {
		return p, httpx.BadRequest("bad_range", "from must be before to")
	}
	return p, nil
}

func optTime(s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	t, err := ParseTime(s)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

func (h *handlers) usage(c echo.Context) error {
	p, err := parseUsageParams(httpx.Query(c))
	if err != nil {
		return err
	}
	iccid, err := pathICCID(c)
	if err != nil {
		return err
	}
	ctx := readCtx(c)
	// A day or month answer over a given range is one statement (dayUsage);
	// anything else reads several, in one transaction.
	rd := singleRead(h.r.DB().Reader)
	if p.g == Hour || p.from == nil || p.to == nil {
		if rd, err = beginRead(ctx, h.r.DB().Reader); err != nil {
			return err
		}
	}
	defer rd.close()
	// The SIM must exist (404 otherwise); any usage row proves it, so the
	// lookup in sim_event runs only when the answer would have none.
	known := false
	ok := func(resp *UsageResponse, sums []bucketSum) error {
		if !known {
			if err := rd.exists(ctx, iccid); errors.Is(err, ErrSIMNotFound) {
				return errNotFound(iccid)
			} else if err != nil {
				return err
			}
		}
		return writeUsage(c, resp, sums, p.byLocation)
	}
	resp := UsageResponse{ICCID: iccid, Granularity: p.g, Buckets: []Bucket{}, Source: SourceSnapshots}
	daily := false
	from, to := time.Time{}, time.Time{}
	if p.from != nil {
		from = *p.from
	}
	if p.to != nil {
		to = *p.to
	}
	if p.from == nil || p.to == nil {
		// The SIM's usage history fills whichever end of the range is missing.
		if p.g != Hour {
			if daily, err = rd.hasDaily(ctx, iccid); err != nil {
				return err
			}
			known = daily
		}
		var lo, hi time.Time
		have := true
		if daily {
			resp.Source = SourceDaily
			if lo, hi, err = rd.dailySpan(ctx, iccid); err != nil {
				return err
			}
		} else if lo, hi, have, err = rd.snapshotSpan(ctx, iccid); err != nil {
			return err
		}
		if !have {
			return ok(&resp, nil) // no usage at all and no range to fill
		}
		known = true
		if p.from == nil {
			from = lo
		}
		if p.to == nil {
			to = p.g.Next(p.g.Floor(hi)) // the bucket holding the last usage is included
		}
	}
	if daily {
		resp.Source = SourceDaily
	}
	from, to = p.g.Floor(from), p.g.Ceil(to)
	if !from.Before(to) {
		// Only one end was given and the history lies wholly beyond it.
		return ok(&resp, nil)
	}
	if n := p.g.countBuckets(from, to, MaxBuckets); n > MaxBuckets {
		return httpx.BadRequest("range_too_large",
			fmt.Sprintf("the range spans more than %d %s buckets; narrow from/to or use a coarser granularity", MaxBuckets, p.g))
	}
	fs, ts := formatTime(from), formatTime(to)
	resp.From, resp.To = &fs, &ts
	sc := scratchPool.Get().(*usageScratch)
	defer sc.release() // after ok has written the answer
	var deltas []Delta
	if p.g != Hour {
		// Day and month buckets are whole days: read the per-day figures.
		var sim bool
		if deltas, daily, sim, err = rd.dayUsage(ctx, iccid, from, to, sc.deltas); err != nil {
			return err
		}
		sc.deltas = deltas
		known = known || sim
		if daily {
			resp.Source = SourceDaily
		}
	} else {
		prev, snaps, err := rd.snapshots(ctx, iccid, from, to)
		if err != nil {
			return err
		}
		deltas = SnapshotDeltas(prev, snaps)
	}
	known = known || len(deltas) > 0
	sums, total := sumBuckets(sc, p.g, from, to, deltas, p.byLocation)
	resp.TotalDataBytes = total
	return ok(&resp, sums)
}

// EventsResponse is the JSON of GET /v1/sims/{iccid}/events.
type EventsResponse struct {
	ICCID      string            `json:"iccid"`
	Events     []json.RawMessage `json:"events"`
	NextCursor *string           `json:"next_cursor"`
}

func parseEventsParams(q func(string) string) (EventsQuery, error) {
	var eq EventsQuery
	var err error
	if eq.From, err = optTime(q("from")); err != nil {
		return eq, httpx.BadRequest("bad_from", "from: "+err.Error())
	}
	if eq.To, err = optTime(q("to")); err != nil {
		return eq, httpx.BadRequest("bad_to", "to: "+err.Error())
	}
	if eq.From != nil && eq.To != nil && !eq.From.Before(*eq.To) {
		return eq, httpx.BadRequest("bad_range", "from must be before to")
	}
	if eq.Kinds, err = ParseKinds(q("kind")); err != nil {
		return eq, httpx.BadRequest("bad_kind", err.Error())
	}
	if eq.Limit, err = ParseLimit(q("limit")); err != nil {
		return eq, httpx.BadRequest("bad_limit", err.Error())
	}
	if s := q("cursor"); s != "" {
		cur, err := DecodeCursor(s)
		if err != nil {
			return eq, httpx.BadRequest("bad_cursor", "cursor is not one this API returned")
		}
		eq.After = &cur
	}
	return eq, nil
}

func (h *handlers) events(c echo.Context) error {
	eq, err := parseEventsParams(httpx.Query(c))
	if err != nil {
		return err
	}
	rd, iccid, err := h.openSIM(c)
	if err != nil {
		return err
	}
	defer rd.close()
	ctx := readCtx(c)
	eq.ICCID = iccid
	entries, err := rd.timeline(ctx, eq)
	if err != nil {
		return err
	}
	resp := EventsResponse{ICCID: iccid, Events: []json.RawMessage{}}
	if len(entries) > eq.Limit {
		entries = entries[:eq.Limit]
		last := entries[len(entries)-1]
		cur := Cursor{At: last.at, ID: last.id}.Encode()
		resp.NextCursor = &cur
	}
	for _, e := range entries {
		b, err := renderEntry(e)
		if err != nil {
			return err
		}
		resp.Events = append(resp.Events, b)
	}
	return c.JSON(http.StatusOK, resp)
}

// renderEntry merges the common fields into the stored kind fields. Keys
// come out sorted (encoding/json sorts map keys), so answers are stable.
func renderEntry(e timelineEntry) (json.RawMessage, error) {
	m := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader([]byte(e.detail)))
	dec.UseNumber() // keep int64 byte counts exact
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode timeline entry %s: %w", e.id, err)
	}
	m["id"] = e.id
	m["kind"] = e.kind
	m["occurred_at"] = nsTime(e.at)
	m["provider"] = e.provider
	m["provider_type"] = e.providerType
	if e.kind == "imei" {
		var prev any
		if e.previousIMEI.Valid {
			prev = e.previousIMEI.String
		}
		m["previous_imei"] = prev
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode timeline entry %s: %w", e.id, err)
	}
	return b, nil
}
