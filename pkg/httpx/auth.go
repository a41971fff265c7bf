package httpx

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// Scope is what an API key may do.
type Scope int

const (
	// ScopeRead may call GET routes of the query API.
	ScopeRead Scope = iota + 1
	// ScopeAdmin may also start rebuilds.
	ScopeAdmin
)

// APIKey is one bearer key of the query API.
type APIKey struct {
	digest [32]byte
	Scope  Scope
}

// ParseAPIKeys reads "key:scope" entries (scope read or admin; a bare key is
// read-only). Keys are kept only as SHA-256 digests, compared in constant
// time, so a key's length or prefix does not leak through timing.
func ParseAPIKeys(entries []string) ([]APIKey, error) {
	var out []APIKey
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		key, scope, hasScope := strings.Cut(e, ":")
		s := ScopeRead
		if hasScope {
			switch scope {
			case "read":
			case "admin":
				s = ScopeAdmin
			default:
				return nil, fmt.Errorf("api key scope %q: want read or admin", scope)
			}
		}
		if len(key) < 16 {
			return nil, fmt.Errorf("api key too short: at least 16 characters")
		}
		out = append(out, APIKey{digest: sha256.Sum256([]byte(key)), Scope: s})
	}
	return out, nil
}

// BearerAuth protects the query API when keys are configured: no or an
// unknown key → 401; a read-only key on a write route → 403. With no keys
// (dev mode) everything passes.
func BearerAuth(keys []APIKey) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if len(keys) == 0 {
			return next
		}
		return func(c echo.Context) error {
			h := c.Request().Header.Get("Authorization")
			tok, ok := strings.CutPrefix(h, "Bearer ")
			if !ok || tok == "" {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="simtrail"`)
				return NewError(http.StatusUnauthorized, "unauthorized", "a bearer API key is required")
			}
			d := sha256.Sum256([]byte(strings.TrimSpace(tok)))
			var scope Scope
			for _, k := range keys {
				if subtle.ConstantTimeCompare(d[:], k.digest[:]) == 1 {
					scope = max(scope, k.Scope)
				}
			}
			if scope == 0 {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="simtrail", error="invalid_token"`)
				return NewError(http.StatusUnauthorized, "unauthorized", "unknown API key")
			}
			m := c.Request().Method
			if m != http.MethodGet && m != http.MethodHead && scope < ScopeAdmin {
				return NewError(http.StatusForbidden, "forbidden", "this API key is read-only")
			}
			return next(c)
		}
	}
}
