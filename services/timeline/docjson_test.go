package timeline

import (
	"encoding/json"
	"testing"
)

// docsOf builds one document of every kind from the given texts and
// numbers, with nil where a text is empty, so that the fuzzer reaches both.
func docsOf(a, b, c string, n int64, pct int32) []jsonDoc {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	optN := func(v int64) *int64 {
		if v%3 == 0 {
			return nil
		}
		return &v
	}
	var rule *ruleDoc
	if n%2 == 0 {
		rule = &ruleDoc{ID: a, Name: b, Description: c}
	}
	var p *int32
	if pct%2 == 0 {
		p = &pct
	}
	var attrs map[string]string
	if n%5 != 0 {
		attrs = map[string]string{a: b, c: a, b + c: "", "": c}
	}
	return []jsonDoc{
		rule,
		planDoc{ID: opt(a), Type: opt(b), Name: opt(c), Operator: opt(a + c)},
		periodDoc{ID: opt(c), Name: opt(a), Start: opt(b), End: opt(c + b)},
		statusDoc{Status: opt(a), StatusRaw: opt(b), Rule: rule},
		imeiDoc{IMEI: opt(c), Rule: rule},
		thresholdDoc{Percent: p, Rule: rule, Direction: opt(a), UsedBytes: optN(n), RemainingBytes: optN(n + 1),
			AllowedBytes: optN(-n - 2), SubscriptionID: opt(b), ExpiresAt: opt(c)},
		lifecycleDoc{Name: a, Attributes: attrs, Rule: rule, SubscriptionID: opt(c), ExpiresAt: opt(b)},
	}
}

func sameDocJSON(t *testing.T, a, b, c string, n int64, pct int32) {
	for _, d := range docsOf(a, b, c, n, pct) {
		want, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.appendJSON(nil); string(got) != string(want) {
			t.Fatalf("%T:\n got  %s\n want %s", d, got, want)
		}
	}
}

// TestDocJSON holds the hand-appended documents equal to encoding/json.
func TestDocJSON(t *testing.T) {
	for _, c := range []struct {
		a, b, c string
		n       int64
		pct     int32
	}{
		{"", "", "", 0, 0},
		{"plan-a", "prepaid", "Plan A", 1, 1},
		{`q"uote\`, "<b>&", "\u2028\x00\xff", -7, 100},
		{"ünï", "tab\t", "x", 1 << 62, -3},
	} {
		sameDocJSON(t, c.a, c.b, c.c, c.n, c.pct)
	}
}

func FuzzDocJSON(f *testing.F) {
	f.Add("plan-a", "prepaid", "Plan A", int64(1), int32(2))
	f.Add(`<"\`, "\xff", "", int64(-9), int32(101))
	f.Fuzz(sameDocJSON)
}
