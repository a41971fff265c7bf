package projection

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/simtrail/simtrail/pkg/httpx"
)

// HeaderPosition is set on every query response: the last stream sequence
// the answering read model has applied.
const HeaderPosition = "X-Projection-Position"

// HeaderMinPosition asks to wait until the read model has applied a sequence
// (the X-Event-Position a webhook's 2xx carried): read-your-writes.
const HeaderMinPosition = "X-Min-Position"

// MaxWait bounds a min_position wait.
const MaxWait = 5 * time.Second

// Middleware answers min_position (query parameter or X-Min-Position header)
// by waiting, at most MaxWait, for the runner to reach it, and sets
// X-Projection-Position. A position not reached in time answers 503 with
// Retry-After, so a client never mistakes stale data for its own write.
func (r *Runner) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			// Set before anything can fail, so error answers carry it too.
			c.Response().Header().Set(HeaderPosition, strconv.FormatUint(r.Position(), 10))
			raw := httpx.QueryValue(c.Request().URL.RawQuery, "min_position")
			if raw == "" {
				raw = c.Request().Header.Get(HeaderMinPosition)
			}
			if raw == "" {
				return next(c) // nothing waited for: the position set above stands
			}
			want, err := strconv.ParseUint(raw, 10, 64)
			if err != nil {
				return httpx.BadRequest("bad_min_position", "min_position must be a non-negative integer stream sequence")
			}
			ctx, cancel := context.WithTimeout(c.Request().Context(), MaxWait)
			err = r.WaitFor(ctx, want)
			cancel()
			c.Response().Header().Set(HeaderPosition, strconv.FormatUint(r.Position(), 10))
			if err != nil {
				return httpx.Unavailable("position_not_reached",
					"the read model has not applied position "+raw+" yet", 1, err)
			}
			return next(c)
		}
	}
}

// rebuildState is the progress of an online rebuild (see rebuild.go).
type rebuildState struct {
	mu              sync.Mutex
	state           string // idle, running, done, failed
	position        uint64
	last            uint64
	eventsPerSecond float64
	etaSeconds      float64
	err             string
	startedAt       time.Time
	finishedAt      time.Time
}

// RebuildStatus is the JSON of a rebuild's progress.
type RebuildStatus struct {
	State           string   `json:"state"`
	Position        uint64   `json:"position"`
	Last            uint64   `json:"last"`
	EventsPerSecond float64  `json:"events_per_second"`
	ETASeconds      *float64 `json:"eta_seconds"`
	Error           string   `json:"error,omitempty"`
	StartedAt       string   `json:"started_at,omitempty"`
	FinishedAt      string   `json:"finished_at,omitempty"`
}

// Status is one entry of GET /v1/projections.
type Status struct {
	Name        string        `json:"name"`
	Position    uint64        `json:"position"`
	Lag         uint64        `json:"lag"`
	PoisonCount int           `json:"poison_count"`
	Poison      []Poison      `json:"poison"`
	Rebuild     RebuildStatus `json:"rebuild"`
}

// Status reports position, lag, recent poison events and rebuild progress.
func (r *Runner) Status(ctx context.Context) (Status, error) {
	poison, total, err := ListPoison(ctx, r.DB().Reader, 20)
	if err != nil {
		return Status{}, err
	}
	st := Status{Name: r.Name(), Position: r.Position(), Lag: r.Lag(), PoisonCount: total, Poison: poison}
	r.rebuild.mu.Lock()
	rb := &r.rebuild
	st.Rebuild = RebuildStatus{State: rb.state, Position: rb.position, Last: rb.last, EventsPerSecond: rb.eventsPerSecond, Error: rb.err}
	if rb.state == "running" {
		eta := rb.etaSeconds
		st.Rebuild.ETASeconds = &eta
	}
	if !rb.startedAt.IsZero() {
		st.Rebuild.StartedAt = rb.startedAt.UTC().Format(time.RFC3339)
	}
	if !rb.finishedAt.IsZero() {
		st.Rebuild.FinishedAt = rb.finishedAt.UTC().Format(time.RFC3339)
	}
	r.rebuild.mu.Unlock()
	return st, nil
}

// ProjectionsHandler serves GET /v1/projections for the given runners.
func ProjectionsHandler(runners ...*Runner) echo.HandlerFunc {
	return func(c echo.Context) error {
		out := make([]Status, 0, len(runners))
		for _, r := range runners {
			st, err := r.Status(c.Request().Context())
			if err != nil {
				return err
			}
			out = append(out, st)
		}
		return c.JSON(http.StatusOK, map[string]any{"projections": out})
	}
}

// ReadyCheck answers readiness: the read model answers a trivial query.
func (r *Runner) ReadyCheck(ctx context.Context) error {
	var one int
	if err := r.DB().Reader.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return errors.New("read model not answering: " + err.Error())
	}
	return nil
}
