package thresholds

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"github.com/simtrail/simtrail/services/ingest/providers"
)

// FuzzDerive feeds arbitrary webhook bodies through the ingest parsers and
// the pure derivation: it must never panic, and what it derives must be
// consistent (a key that is a valid subject token, crossings only at
// configured levels, none for unlimited plans).
func FuzzDerive(f *testing.F) {
	for _, prov := range []string{"droam", "roamify", "truphone"} {
		files, _ := filepath.Glob(filepath.Join("testdata", prov, "*.json"))
		for _, file := range files {
			raw, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(len(prov)), raw)
		}
	}
	levels := DefaultLevels
	f.Fuzz(func(t *testing.T, which uint8, raw []byte) {
		var p providers.Parsed
		var err error
		switch which % 3 {
		case 0:
			p, err = providers.ParseDroam(raw, epoch)
		case 1:
			p, err = providers.ParseRoamify(raw, epoch)
		default:
			p, err = providers.ParseTruphone(raw, time.Unix(0, 0))
		}
		if err != nil || p.Event == nil {
			return
		}
		o, ok := derive(p.Event, map[string]int64{"34f1b2c8-6d9e-4a0b-8c7d-2e5f1a9b3c46": 1 << 30})
		if !ok {
			return
		}
		if o.key == "" || (o.subjectType != subjectSIM && o.subjectType != subjectPool) {
			t.Fatalf("bad subject %q %q", o.subjectType, o.key)
		}
		cs := o.crossings(levels)
		if o.unlimited && len(cs) != 0 {
			t.Fatal("unlimited plan crossed a level")
		}
		for _, c := range cs {
			if c.source != sourceProvider && c.source != sourceComputed {
				t.Fatalf("bad source %q", c.source)
			}
		}
		_ = o.percent()
		if p.Event.GetKind() == simtrailv1.Kind_KIND_OTHER {
			t.Fatal("kind other derived")
		}
	})
}
