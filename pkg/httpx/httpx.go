// Package httpx maps errors to HTTP answers in one place and serves the
// health, readiness and metrics routes every simtrail process exposes.
package httpx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Error is an error with its HTTP answer. Every error body simtrail sends is
// {"error":{"code":"...","message":"..."}}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfter, when positive, is sent as Retry-After seconds.
	RetryAfter int   `json:"-"`
	Err        error `json:"-"`
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// NewError builds an *Error.
func NewError(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// BadRequest is a 400 with code "bad_request" unless code is given.
func BadRequest(code, msg string) *Error { return NewError(http.StatusBadRequest, code, msg) }

// NotFound is a 404.
func NotFound(code, msg string) *Error { return NewError(http.StatusNotFound, code, msg) }

// Unavailable is a 503 with Retry-After.
func Unavailable(code, msg string, retryAfter int, err error) *Error {
	e := NewError(http.StatusServiceUnavailable, code, msg)
	e.RetryAfter = retryAfter
	e.Err = err
	return e
}

type errorBody struct {
	Error *Error `json:"error"`
}

// ErrorHandler is echo's HTTPErrorHandler: it turns any error into the JSON
// error body, logging only server-side failures.
func ErrorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var he *Error
		var ee *echo.HTTPError
		switch {
		case errors.As(err, &he):
		case errors.As(err, &ee):
			he = NewError(ee.Code, codeFor(ee.Code), fmt.Sprint(ee.Message))
			if ee.Code == http.StatusRequestEntityTooLarge {
				he.Message = "request body larger than the limit"
			}
		default:
			he = NewError(http.StatusInternalServerError, "internal", "internal error")
			he.Err = err
		}
		if errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil {
			// The client went away; nobody reads this answer.
			return
		}
		if he.Status >= 500 {
			log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "status", he.Status, "err", err)
		}
		if he.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", fmt.Sprint(he.RetryAfter))
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(he.Status)
			return
		}
		_ = c.JSON(he.Status, errorBody{Error: he})
	}
}

func codeFor(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "body_too_large"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusServiceUnavailable:
		return "unavailable"
	default:
		return "error"
	}
}

// Check is one readiness probe; it must answer within the context deadline.
type Check func(ctx context.Context) error

// Health registers /healthz (the process is up), /readyz (every check passes
// within a second) and /metrics (Prometheus, from reg).
func Health(e *echo.Echo, reg *prometheus.Registry, checks map[string]Check) {
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), time.Second)
		defer cancel()
		res := map[string]string{}
		ok := true
		for name, chk := range checks {
			if err := chk(ctx); err != nil {
				res[name] = err.Error()
				ok = false
				continue
			}
			res[name] = "ok"
		}
		status := http.StatusOK
		if !ok {
			status = http.StatusServiceUnavailable
		}
		return c.JSON(status, map[string]any{"ready": ok, "checks": res})
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
}

// TrustProxies makes the client IP come from X-Forwarded-For, trusting
// only the given proxy ranges.
func TrustProxies(e *echo.Echo, cidrs []*net.IPNet) {
	if len(cidrs) == 0 {
		return
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, c := range cidrs {
		opts = append(opts, echo.TrustIPRange(c))
	}
	e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
}

// NewEcho returns an echo instance with simtrail's error handler and no
// banner; the caller adds routes and owns the http.Server.
func NewEcho(log *slog.Logger) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = ErrorHandler(log)
	// Never trust X-Forwarded-For unless the operator names the proxies
	// (TrustProxies): allow-lists and logs use the socket's peer address.
	e.IPExtractor = echo.ExtractIPDirect()
	return e
}
