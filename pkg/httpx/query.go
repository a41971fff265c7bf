package httpx

import (
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// QueryValue is url.ParseQuery(rawQuery).Get(key), and QueryHas its
// key-present test, without building the url.Values map: echo's
// QueryParam parses the whole query into a map on first use, which was a
// tenth of a hot query answer's garbage. Pairs url.ParseQuery rejects (a
// semicolon, a bad escape) are skipped as it skips them; a test holds the
// two equal on every input.
func QueryValue(rawQuery, key string) string {
	v, _ := queryLookup(rawQuery, key)
	return v
}

// QueryHas reports whether key appears in rawQuery (with any value).
func QueryHas(rawQuery, key string) bool {
	_, ok := queryLookup(rawQuery, key)
	return ok
}

func queryLookup(q, key string) (string, bool) {
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if !sameKey(k, key) {
			continue
		}
		uk, err := url.QueryUnescape(k)
		if err != nil || uk != key {
			continue
		}
		uv, err := url.QueryUnescape(v)
		if err != nil {
			continue
		}
		return uv, true
	}
	return "", false
}

// sameKey is a cheap test that raw, once unescaped, may equal key: equal
// already, or escaped at all.
func sameKey(raw, key string) bool {
	return raw == key || strings.ContainsAny(raw, "%+")
}

// Query is c's query parameter getter: c.QueryParam without its url.Values
// map (QueryValue on the request's raw query).
func Query(c echo.Context) func(key string) string {
	raw := c.Request().URL.RawQuery
	return func(key string) string { return QueryValue(raw, key) }
}
