package ingest_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/httpx"
	"github.com/simtrail/simtrail/pkg/natstest"
	"github.com/simtrail/simtrail/pkg/natsx"
	"github.com/simtrail/simtrail/services/ingest"
	"github.com/simtrail/simtrail/services/ingest/providers"
)

// BenchmarkAcceptPath drives the echo handler in process (no HTTP client or
// socket) against a real embedded JetStream, per provider. Each iteration
// posts a distinct body so nothing is a duplicate.
func BenchmarkAcceptPath(b *testing.B) {
	ns := natstest.Run(b)
	ns.Stream(b)
	nc, err := natsx.Connect(natsx.ConnConfig{URLs: ns.URL(), Name: "ingest-bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	svc, err := ingest.New(ingest.Config{
		DroamSecrets: []string{droamSecret}, RoamifySecrets: []string{roamifySecret},
		TruphoneTokens: []string{truphoneToken}, PublishTimeout: 5 * time.Second,
		Now: func() time.Time { return fixedNow },
	}, nc, js, log, nil)
	if err != nil {
		b.Fatal(err)
	}
	e := httpx.NewEcho(log)
	svc.Routes(e)

	cases := []struct{ provider, file string }{
		{"droam", "rule.sim_card.current_usage.triggered.json"},
		{"roamify", "esim.usage.01.json"},
		{"truphone", "USAGE_THRESHOLD.json"},
	}
	for _, tc := range cases {
		base := benchExample(b, tc.provider, tc.file)
		b.Run(tc.provider, func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				body := uniqueBody(base, i)
				url := "/webhooks/" + tc.provider
				if tc.provider == "truphone" {
					url += "/" + truphoneToken
				}
				req := httptest.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				switch tc.provider {
				case "droam":
					hash, ts := providers.SignDroam(droamSecret, fixedNow)
					req.Header.Set("X-Hash", hash)
					req.Header.Set("X-Timestamp", ts)
				case "roamify":
					req.Header.Set("X-Roamify-Signature", providers.SignRoamify(roamifySecret, body))
				}
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

func benchExample(b *testing.B, provider, name string) []byte {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join("providers", "testdata", provider, name))
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// uniqueBody appends i as trailing JSON whitespace (space = 0, tab = 1), so
// every body is valid, distinct and parses to the same fields.
func uniqueBody(base []byte, i int) []byte {
	out := make([]byte, 0, len(base)+32)
	out = append(out, base...)
	for j := 0; j < 32; j++ {
		if i>>j&1 == 1 {
			out = append(out, '\t')
		} else {
			out = append(out, ' ')
		}
	}
	return out
}
