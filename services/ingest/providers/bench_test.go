package providers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func benchProvider(b *testing.B, dir string, parse parseFunc) {
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range paths {
		base := filepath.Base(p)
		if strings.Contains(base, "fixture") || strings.Contains(base, "response") || strings.Contains(base, "request") {
			continue
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.TrimSuffix(base, ".json"), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := parse(raw, receivedAt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseDroam(b *testing.B)    { benchProvider(b, "droam", ParseDroam) }
func BenchmarkParseRoamify(b *testing.B)  { benchProvider(b, "roamify", ParseRoamify) }
func BenchmarkParseTruphone(b *testing.B) { benchProvider(b, "truphone", ParseTruphone) }
