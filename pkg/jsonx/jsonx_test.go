package jsonx

import (
	"encoding/json"
	"testing"
)

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "NL", "2025-03-01T00:00:00Z", `a "quoted" \ path`, "<b>&</b>",
		"Ünïcode", "bad \xff utf8", "line\u2028sep\u2029", "\x00\x1f\x7f", "tab\tnew\nline"} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(AppendString([]byte("x"), s)); got != "x"+string(want) {
			t.Errorf("%q: got %s, want x%s", s, got, want)
		}
		if got := string(AppendOptString(nil, &s)); got != string(want) {
			t.Errorf("%q: optional got %s, want %s", s, got, want)
		}
	}
	if got := string(AppendOptString(nil, nil)); got != "null" {
		t.Errorf("nil: %s", got)
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("plain")
	f.Add("<\xff\u2028>")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}
