package timeline

import (
	"context"
	"slices"
	"testing"
	"time"

	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestPreviousIMEI applies IMEI-bearing events in every order and checks
// that previous_imei is the IMEI of the latest earlier event by provider
// time (ties by event id), whatever the arrival order.
func TestPreviousIMEI(t *testing.T) {
	base := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	mk := func(id string, hours int, kind simtrailv1.Kind, imei string) *simtrailv1.Event {
		ev := &simtrailv1.Event{Id: id, Iccid: "8937204016150000018", Kind: kind, Provider: simtrailv1.Provider_PROVIDER_DROAM,
			OccurredAt: timestamppb.New(base.Add(time.Duration(hours) * time.Hour))}
		switch kind {
		case simtrailv1.Kind_KIND_IMEI:
			ev.Body = &simtrailv1.Event_Imei{Imei: &simtrailv1.ImeiChanged{Imei: imei}}
		case simtrailv1.Kind_KIND_STATUS:
			ev.Sim = &simtrailv1.SimSnapshot{Imei: imei, Status: "active"}
			ev.Body = &simtrailv1.Event_Status{Status: &simtrailv1.StatusChanged{Status: "active"}}
		}
		return ev
	}
	evs := []*simtrailv1.Event{
		mk("a", 0, simtrailv1.Kind_KIND_IMEI, "111"),   // first: no previous
		mk("b", 1, simtrailv1.Kind_KIND_STATUS, "111"), // a snapshot carrying an IMEI
		mk("c", 2, simtrailv1.Kind_KIND_IMEI, "222"),
		mk("e", 3, simtrailv1.Kind_KIND_IMEI, "333"), // same time as d, larger id: d is earlier
		mk("d", 3, simtrailv1.Kind_KIND_IMEI, "444"),
	}
	want := map[string]string{"a": "", "c": "111", "d": "222", "e": "444"}
	orders := [][]int{{0, 1, 2, 3, 4}, {4, 3, 2, 1, 0}, {2, 4, 0, 3, 1}, {3, 0, 4, 1, 2, 0, 3}}
	for _, order := range orders {
		t.Run("", func(t *testing.T) {
			ctx := context.Background()
			db := applyInOrder(t, evs, order, func() int { return len(order) })
			rd, err := beginRead(ctx, db.Reader)
			if err != nil {
				t.Fatal(err)
			}
			defer rd.close()
			entries, err := rd.timeline(ctx, EventsQuery{ICCID: "8937204016150000018", Kinds: []string{"imei"}, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, e := range entries {
				ids = append(ids, e.id)
				if e.previousIMEI.String != want[e.id] {
					t.Errorf("%s: previous %q, want %q", e.id, e.previousIMEI.String, want[e.id])
				}
			}
			if !slices.Equal(ids, []string{"a", "c", "d", "e"}) {
				t.Errorf("order %v", ids)
			}
			s, err := rd.summary(ctx, "8937204016150000018")
			if err != nil {
				t.Fatal(err)
			}
			if *s.IMEI != "333" || s.EventsCount != 5 {
				t.Errorf("summary imei %s count %d", *s.IMEI, s.EventsCount)
			}
		})
	}
}
