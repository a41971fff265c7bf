package ingest

import (
	"testing"
)

func TestParseAck(t *testing.T) {
	for _, c := range []struct {
		in      string
		seq     uint64
		dup, ok bool
	}{
		{`{"stream":"SIMTRAIL","seq":42}`, 42, false, true},
		{`{"stream":"SIMTRAIL","seq":7,"duplicate": true}`, 7, true, true},
		{`{"stream":"SIMTRAIL","seq":7,"duplicate":true}`, 7, true, true},
		{`{"stream":"SIMTRAIL","domain":"hub","seq":9}`, 9, false, true},
		{`{"stream":"SIMTRAIL", "seq": 5 }`, 5, false, true},
		{`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`, 0, false, false},
		{`{"stream":"","seq":1}`, 0, false, false},
		{`{}`, 0, false, false},
		{`not json`, 0, false, false},
		{``, 0, false, false},
	} {
		seq, dup, err := parseAck([]byte(c.in), "SIMTRAIL")
		if (err == nil) != c.ok || seq != c.seq || dup != c.dup {
			t.Errorf("%s: got %d %v %v", c.in, seq, dup, err)
		}
	}
}

// FuzzParseAck holds the template reader equal to encoding/json's reading
// of the same reply: whatever it accepts, jetstream's decoding gives the
// same sequence and duplicate flag.
func FuzzParseAck(f *testing.F) {
	for _, s := range []string{`{"stream":"SIMTRAIL","seq":42}`, `{"stream":"SIMTRAIL","seq":7,"duplicate": true}`,
		`{"stream":"SIMTRAIL","seq":018}`, `{"stream":"SIMTRAIL","seq":18446744073709551616}`, `{"error":{"code":503}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		seq, dup, ok := fastAck(data, "SIMTRAIL")
		if !ok {
			return
		}
		wseq, wdup, err := slowAck(data)
		if err != nil || wseq != seq || wdup != dup {
			t.Fatalf("%q: fast %d %v, encoding/json %d %v %v", data, seq, dup, wseq, wdup, err)
		}
	})
}
