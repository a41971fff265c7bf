package timeline

import (
	"errors"
	"net/http"
	"testing"

	"github.com/simtrail/simtrail/pkg/httpx"
)

// FuzzQueryParams feeds hostile query parameters to both parameter parsers:
// they must never panic, must answer every rejection with a 400 JSON error,
// and what they accept must be consistent (from before to, limit in range).
func FuzzQueryParams(f *testing.F) {
	f.Add("day", "location", "2025-08-10", "2025-08-12T00:00:00Z", "status,imei", "50", "")
	f.Add("hour", "", "2025-08-10T13:00:00+02:00", "", "", "", Cursor{At: 1754817120000000000, ID: "abc"}.Encode())
	f.Add("month", "x", "9999-99-99", "0000-01-01", "threshold,,", "-1", "!!")
	f.Add("", "", "", "", "lifecycle", "500", "djE6OjE=")
	f.Fuzz(func(t *testing.T, gran, groupBy, from, to, kind, limit, cursor string) {
		q := func(k string) string {
			return map[string]string{"granularity": gran, "group_by": groupBy, "from": from, "to": to,
				"kind": kind, "limit": limit, "cursor": cursor}[k]
		}
		check := func(err error) {
			if err == nil {
				return
			}
			var he *httpx.Error
			if !errors.As(err, &he) || he.Status != http.StatusBadRequest || he.Code == "" {
				t.Fatalf("rejection is not a 400 JSON error: %#v", err)
			}
		}
		up, err := parseUsageParams(q)
		check(err)
		if err == nil && up.from != nil && up.to != nil && !up.from.Before(*up.to) {
			t.Fatalf("accepted from %v not before to %v", up.from, up.to)
		}
		eq, err := parseEventsParams(q)
		check(err)
		if err == nil {
			if eq.Limit < 1 || eq.Limit > 500 {
				t.Fatalf("accepted limit %d", eq.Limit)
			}
			if eq.From != nil && eq.To != nil && !eq.From.Before(*eq.To) {
				t.Fatalf("accepted from %v not before to %v", eq.From, eq.To)
			}
		}
	})
}

// FuzzCursor: any string decodes or is refused without panicking, and every
// cursor the API issues decodes back to itself.
func FuzzCursor(f *testing.F) {
	f.Add(int64(1754817120000000000), "0123abc", "djE6MTox")
	f.Add(int64(-1), "id:with:colons", "")
	f.Fuzz(func(t *testing.T, at int64, id, raw string) {
		_, _ = DecodeCursor(raw)
		if id == "" || len(id) > 128 {
			return
		}
		c := Cursor{At: at, ID: id}
		got, err := DecodeCursor(c.Encode())
		if err != nil || got != c {
			t.Fatalf("round trip of %+v: %+v, %v", c, got, err)
		}
	})
}
