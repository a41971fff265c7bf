package httpx_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/simtrail/simtrail/pkg/httpx"
)

func TestBearerAuth(t *testing.T) {
	keys, err := httpx.ParseAPIKeys([]string{"reader-key-0123456789", "admin-key-0123456789:admin"})
	if err != nil {
		t.Fatal(err)
	}
	e := httpx.NewEcho(slog.New(slog.DiscardHandler))
	g := e.Group("/v1", httpx.BearerAuth(keys))
	ok := func(c echo.Context) error { return c.String(200, "ok") }
	g.GET("/x", ok)
	g.POST("/x", ok)
	cases := []struct {
		method, auth string
		want         int
	}{
		{"GET", "", 401},
		{"GET", "Bearer nope-nope-nope-nope", 401},
		{"GET", "Basic cmVhZGVyOmtleQ==", 401},
		{"GET", "Bearer reader-key-0123456789", 200},
		{"POST", "Bearer reader-key-0123456789", 403},
		{"POST", "Bearer admin-key-0123456789", 200},
		{"GET", "Bearer admin-key-0123456789", 200},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, "/v1/x", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s %q: %d, want %d (%s)", c.method, c.auth, rec.Code, c.want, rec.Body)
		}
	}
	// No keys configured: open (dev mode).
	e2 := httpx.NewEcho(slog.New(slog.DiscardHandler))
	e2.GET("/v1/x", ok, httpx.BearerAuth(nil))
	rec := httptest.NewRecorder()
	e2.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/x", nil))
	if rec.Code != 200 {
		t.Errorf("open mode: %d", rec.Code)
	}
	for _, bad := range [][]string{{"short"}, {"long-enough-key-000:write"}} {
		if _, err := httpx.ParseAPIKeys(bad); err == nil {
			t.Errorf("ParseAPIKeys(%q) accepted", bad)
		}
	}
}
