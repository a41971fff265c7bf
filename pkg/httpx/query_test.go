package httpx

import (
	"net/url"
	"testing"
)

func TestQueryValue(t *testing.T) {
	for _, c := range []struct {
		q, key, want string
		has          bool
	}{
		{"from=2025-01-01&to=2025-02-01", "to", "2025-02-01", true},
		{"a=1&a=2", "a", "1", true},
		{"pretty", "pretty", "", true},
		{"pretty=", "pretty", "", true},
		{"x=1", "pretty", "", false},
		{"from=2025-01-01T00%3A00%3A00Z", "from", "2025-01-01T00:00:00Z", true},
		{"a%62c=1", "abc", "1", true},
		{"a+b=c+d", "a b", "c d", true},
		{"a=1;b=2&a=3", "a", "3", true},
		{"a=%zz&a=2", "a", "2", true},
		{"&&a=1", "a", "1", true},
	} {
		if got, has := QueryValue(c.q, c.key), QueryHas(c.q, c.key); got != c.want || has != c.has {
			t.Errorf("%q %q: got %q %v, want %q %v", c.q, c.key, got, has, c.want, c.has)
		}
	}
}

// FuzzQueryValue holds QueryValue and QueryHas equal to url.ParseQuery.
func FuzzQueryValue(f *testing.F) {
	for _, s := range []string{"from=2025-01-01&to=x", "a=1;b=2&a=3", "a%62c=1", "a=%zz&a=2", "pretty", "min_position=12&pretty"} {
		f.Add(s, "a")
		f.Add(s, "pretty")
	}
	f.Fuzz(func(t *testing.T, q, key string) {
		vals, _ := url.ParseQuery(q)
		_, want := vals[key]
		if got := QueryValue(q, key); got != vals.Get(key) {
			t.Fatalf("QueryValue(%q, %q) = %q, url.ParseQuery says %q", q, key, got, vals.Get(key))
		}
		if got := QueryHas(q, key); got != want {
			t.Fatalf("QueryHas(%q, %q) = %v, url.ParseQuery says %v", q, key, got, want)
		}
	})
}
