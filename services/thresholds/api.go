package thresholds

import (
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/httpx"
	"github.com/simtrail/simtrail/pkg/projection"
)

// Fleet page sizes.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Routes registers the thresholds query API on e. Every route waits for
// min_position through r.Middleware() and reads the database r serves at
// the time of the request (it changes when a rebuild swaps).
func Routes(e *echo.Echo, r *projection.Runner) {
	mw := r.Middleware()
	e.GET("/v1/sims/:iccid/thresholds", func(c echo.Context) error {
		iccid := c.Param("iccid")
		if !events.ValidKey(iccid) {
			return httpx.BadRequest("bad_iccid", "iccid must be 1..64 letters, digits, '-' or '_'")
		}
		v, err := QuerySIM(c.Request().Context(), r.DB().Reader, iccid)
		if errors.Is(err, ErrNotFound) {
			return httpx.NotFound("sim_not_found", "no threshold state for SIM "+iccid)
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, v)
	}, mw)
	e.GET("/v1/pools/:pool_id", func(c echo.Context) error {
		id := c.Param("pool_id")
		if !events.ValidKey(id) {
			return httpx.BadRequest("bad_pool_id", "pool_id must be 1..64 letters, digits, '-' or '_'")
		}
		v, err := QueryPool(c.Request().Context(), r.DB().Reader, id)
		if errors.Is(err, ErrNotFound) {
			return httpx.NotFound("pool_not_found", "no threshold state for pool "+id)
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, v)
	}, mw)
	e.GET("/v1/thresholds", func(c echo.Context) error {
		q, err := parseFleetQuery(c)
		if err != nil {
			return err
		}
		v, err := QueryFleet(c.Request().Context(), r.DB().Reader, q)
		if errors.Is(err, ErrBadCursor) {
			return httpx.BadRequest("bad_cursor", "cursor is not one this API issued")
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, v)
	}, mw)
}

func parseFleetQuery(c echo.Context) (FleetQuery, error) {
	param := httpx.Query(c)
	q := FleetQuery{Limit: DefaultLimit, Cursor: param("cursor")}
	if s := param("min_percent"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > 100 {
			return q, httpx.BadRequest("bad_min_percent", "min_percent must be a number from 0 to 100")
		}
		q.MinPercent = &f
	}
	if s := param("provider"); s != "" {
		if _, ok := events.ParseProvider(s); !ok {
			return q, httpx.BadRequest("bad_provider", "provider must be one of droam, roamify, truphone")
		}
		q.Provider = s
	}
	if s := param("status"); s != "" {
		if !validStatus(s) {
			return q, httpx.BadRequest("bad_status", "status must be a normalised status name (lower case letters, digits, '_')")
		}
		q.Status = s
	}
	if s := param("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return q, httpx.BadRequest("bad_limit", "limit must be an integer from 1 to 500")
		}
		q.Limit = n
	}
	if q.Cursor != "" {
		if _, _, err := decodeCursor(q.Cursor); err != nil {
			return q, httpx.BadRequest("bad_cursor", "cursor is not one this API issued")
		}
	}
	return q, nil
}

// validStatus accepts the shape of a normalised status name; the set is
// open (a provider may introduce a status), so the shape is what is checked.
func validStatus(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '_') {
			return false
		}
	}
	return true
}
