package thresholds

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

// TestOrderIndependenceGenerated folds a generated mix (top-ups, new
// subscriptions, ends, unlimited plans, pools) in provider-time order and
// in three random orders with duplicates: every SIM, pool and fleet answer
// must be identical, and so must the set of outbox crossings.
func TestOrderIndependenceGenerated(t *testing.T) {
	evs := genEvents(11, 24, 80)
	slices.SortStableFunc(evs, func(a, b *simtrailv1.Event) int {
		return a.GetOccurredAt().AsTime().Compare(b.GetOccurredAt().AsTime())
	})
	answers := func(evs []*simtrailv1.Event) (map[string]string, map[string]int) {
		db := build(t, genOptions(), evs...)
		out := map[string]string{}
		for _, ev := range evs {
			if id := ev.GetIccid(); id != "" {
				out["sim "+id] = jsonOf(t, simView(t, db, id))
			}
		}
		for _, id := range genPools {
			out["pool "+id] = jsonOf(t, poolView(t, db, id))
		}
		for _, q := range []FleetQuery{{Limit: 500}, {Limit: 500, MinPercent: ptr(50.0)}, {Limit: 500, Provider: "truphone"}} {
			v, err := QueryFleet(context.Background(), db, q)
			if err != nil {
				t.Fatal(err)
			}
			out["fleet "+jsonOf(t, q)] = jsonOf(t, v)
		}
		return out, outboxRows(t, db)
	}
	want, wantOutbox := answers(evs)
	for seed := range uint64(3) {
		rng := rand.New(rand.NewPCG(seed, 5))
		shuffled := slices.Clone(evs)
		for range len(evs) / 5 {
			shuffled = append(shuffled, evs[rng.IntN(len(evs))])
		}
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got, gotOutbox := answers(shuffled)
		for k, w := range want {
			if got[k] != w {
				t.Errorf("seed %d: %s differs:\n%s\nwant\n%s", seed, k, got[k], w)
			}
		}
		if jsonOf(t, gotOutbox) != jsonOf(t, wantOutbox) {
			t.Errorf("seed %d: outbox crossings differ", seed)
		}
	}
	t.Logf("%d events, %d answers, %d crossings", len(evs), len(want), len(wantOutbox))
}
