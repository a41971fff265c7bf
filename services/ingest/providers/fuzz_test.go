package providers

import (
	"os"
	"path/filepath"
	"testing"

	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

// fuzzParser seeds the fuzzer with every example file of the provider
// (webhooks and the rest alike: odd shapes are good seeds) and asserts the
// invariants every input must keep.
func fuzzParser(f *testing.F, dir string, p simtrailv1.Provider) {
	for _, name := range exampleFiles(f, dir) {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"type":"echo","echo_data":"a:1"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := parsers[p](raw, receivedAt)
		checkInvariants(t, p, raw, got, err)
	})
}

func FuzzParseDroam(f *testing.F)    { fuzzParser(f, "droam", droam) }
func FuzzParseRoamify(f *testing.F)  { fuzzParser(f, "roamify", roamify) }
func FuzzParseTruphone(f *testing.F) { fuzzParser(f, "truphone", truphone) }
