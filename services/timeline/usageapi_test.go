package timeline_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/simtrail/simtrail/pkg/httpx"
	"github.com/simtrail/simtrail/pkg/projection"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"github.com/simtrail/simtrail/services/timeline"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestUsageOneStatementPath covers the single-statement day/month answer
// (from and to given) for the cases the golden files do not: a known SIM
// without any usage (zero buckets, not 404), an unknown SIM (404), and a
// SIM whose provider per-day rows all lie outside the range (source stays
// daily_records, zero buckets).
func TestUsageOneStatementPath(t *testing.T) {
	ctx := context.Background()
	p := timeline.NewProjector()
	db, err := projection.Open(ctx, filepath.Join(t.TempDir(), "u.db"), p.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := timestamppb.New(time.Date(2025, 3, 5, 10, 0, 0, 0, time.UTC))
	msgs := []projection.Message{
		{Seq: 1, Event: &simtrailv1.Event{Id: "a", Iccid: "111", Kind: simtrailv1.Kind_KIND_STATUS, OccurredAt: at,
			Body: &simtrailv1.Event_Status{Status: &simtrailv1.StatusChanged{Status: "active"}}}},
		{Seq: 2, Event: &simtrailv1.Event{Id: "b", Iccid: "222", Kind: simtrailv1.Kind_KIND_USAGE, OccurredAt: at,
			Sim: &simtrailv1.SimSnapshot{Usage: &simtrailv1.UsageSnapshot{Daily: []*simtrailv1.DailyUsage{{Date: "2025-03-05", Location: "NL", DataBytes: 7}}}}}},
	}
	log := slog.New(slog.DiscardHandler)
	if _, err := projection.ApplyBatch(ctx, db.Writer, p, msgs, 1, log); err != nil {
		t.Fatal(err)
	}
	r, err := projection.NewRunner(ctx, p, db, nil, projection.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e := httpx.NewEcho(log)
	timeline.Routes(e, r)
	get := func(iccid, q string) (int, timeline.UsageResponse) {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/sims/"+iccid+"/usage"+q, nil))
		var resp timeline.UsageResponse
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
		}
		return rec.Code, resp
	}
	// ?pretty goes through echo's encoder: the same answer, indented.
	for _, q := range []string{"?granularity=day&from=2025-03-01&to=2025-03-08", "?from=2025-03-01&to=2025-03-08&group_by=location"} {
		plain, pretty := httptest.NewRecorder(), httptest.NewRecorder()
		e.ServeHTTP(plain, httptest.NewRequest(http.MethodGet, "/v1/sims/222/usage"+q, nil))
		e.ServeHTTP(pretty, httptest.NewRequest(http.MethodGet, "/v1/sims/222/usage"+q+"&pretty", nil))
		var a, b any
		if err := json.Unmarshal(plain.Body.Bytes(), &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(pretty.Body.Bytes(), &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) || !strings.Contains(pretty.Body.String(), "\n  ") {
			t.Errorf("%s: pretty answer %s differs from %s", q, pretty.Body, plain.Body)
		}
	}
	for _, g := range []string{"day", "month"} {
		q := "?granularity=" + g + "&from=2025-04-01&to=2025-06-01"
		if code, resp := get("111", q); code != http.StatusOK || resp.Source != timeline.SourceSnapshots || resp.TotalDataBytes != 0 || len(resp.Buckets) == 0 {
			t.Errorf("%s, SIM without usage: %d %+v", g, code, resp)
		}
		if code, _ := get("333", q); code != http.StatusNotFound {
			t.Errorf("%s, unknown SIM: %d, want 404", g, code)
		}
		if code, resp := get("222", q); code != http.StatusOK || resp.Source != timeline.SourceDaily || resp.TotalDataBytes != 0 {
			t.Errorf("%s, per-day rows outside the range: %d %+v", g, code, resp)
		}
		if code, resp := get("222", "?granularity="+g+"&from=2025-03-01&to=2025-04-01"); code != http.StatusOK || resp.Source != timeline.SourceDaily || resp.TotalDataBytes != 7 {
			t.Errorf("%s, per-day rows in the range: %d %+v", g, code, resp)
		}
	}
}
