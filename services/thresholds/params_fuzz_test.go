package thresholds

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/simtrail/simtrail/pkg/httpx"
)

// FuzzFleetQuery feeds hostile query strings to the fleet parameter parser:
// no panic, every rejection a 400 JSON error, and what it accepts is in range.
func FuzzFleetQuery(f *testing.F) {
	f.Add("50", "droam", "active", "20", encodeCursor(97.5, "8937204016150000018"))
	f.Add("NaN", "x", "Active!", "0", "%%%")
	f.Add("1e400", "", "", "501", "fA")
	f.Fuzz(func(t *testing.T, minPct, provider, status, limit, cursor string) {
		v := url.Values{}
		for k, s := range map[string]string{"min_percent": minPct, "provider": provider, "status": status, "limit": limit, "cursor": cursor} {
			if s != "" {
				v.Set(k, s)
			}
		}
		e := echo.New()
		c := e.NewContext(httptest.NewRequest(http.MethodGet, "/v1/thresholds?"+v.Encode(), nil), httptest.NewRecorder())
		q, err := parseFleetQuery(c)
		if err != nil {
			var he *httpx.Error
			if !errors.As(err, &he) || he.Status != http.StatusBadRequest {
				t.Fatalf("rejection is not a 400 JSON error: %#v", err)
			}
			return
		}
		if q.Limit < 1 || q.Limit > MaxLimit {
			t.Fatalf("accepted limit %d", q.Limit)
		}
		if q.MinPercent != nil && (*q.MinPercent < 0 || *q.MinPercent > 100) {
			t.Fatalf("accepted min_percent %v", *q.MinPercent)
		}
		if _, _, err := fleetSQL(q); err != nil {
			t.Fatalf("accepted query does not build: %v", err)
		}
	})
}

// FuzzFleetCursor: cursors decode or are refused without panicking, and
// every cursor the API issues round-trips.
func FuzzFleetCursor(f *testing.F) {
	f.Add(35.38, "8910300000051234567", "MzUuMzh8ODk")
	f.Fuzz(func(t *testing.T, pct float64, iccid, raw string) {
		_, _, _ = decodeCursor(raw)
		if iccid == "" || pct != pct || pct > 1e300 || pct < -1e300 {
			return
		}
		p, id, err := decodeCursor(encodeCursor(pct, iccid))
		if err != nil || p != pct || id != iccid {
			t.Fatalf("round trip of (%v, %q): (%v, %q), %v", pct, iccid, p, id, err)
		}
	})
}
