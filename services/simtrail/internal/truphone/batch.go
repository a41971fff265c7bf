package truphone

import (
	"context"
	"sync"
)

// Action is what an Op does.
type Action int

// The actions of `simtrail truphone`.
const (
	ActionRegister Action = iota
	ActionUnregister
	ActionList
)

// Op is one unit of a batch: one request (two with the PUT→POST fallback) for
// one SIM.
type Op struct {
	Action     Action
	ICCID      string
	Type       Type   // register, unregister
	WebhookURL string // register
}

// Ops expands ICCIDs × types into the ops of a batch, in input order.
func Ops(action Action, iccids []string, types []Type, webhookURL string) []Op {
	if action == ActionList {
		ops := make([]Op, 0, len(iccids))
		for _, id := range iccids {
			ops = append(ops, Op{Action: ActionList, ICCID: id})
		}
		return ops
	}
	ops := make([]Op, 0, len(iccids)*len(types))
	for _, id := range iccids {
		for _, t := range types {
			ops = append(ops, Op{Action: action, ICCID: id, Type: t, WebhookURL: webhookURL})
		}
	}
	return ops
}

// Do runs one op.
func (c *Client) Do(ctx context.Context, op Op) Result {
	switch op.Action {
	case ActionRegister:
		return c.Register(ctx, op.ICCID, op.Type, op.WebhookURL)
	case ActionUnregister:
		return c.Unregister(ctx, op.ICCID, op.Type)
	default:
		return c.Preferences(ctx, op.ICCID)
	}
}

// Summary counts the outcomes of a batch.
type Summary struct{ OK, Failed int }

// Run executes ops with up to workers requests in flight (the shared limiter
// sets the pace; workers only hide latency) and calls report once per op, from
// one goroutine at a time, in completion order. A failed op does not stop the
// batch: each SIM is independent and the operation is idempotent, so the
// failed ones can simply be run again. Cancelling ctx makes the remaining ops
// fail fast.
func (c *Client) Run(ctx context.Context, ops []Op, workers int, report func(Result)) Summary {
	if workers < 1 {
		workers = 1
	}
	jobs := make(chan Op)
	var (
		mu  sync.Mutex
		sum Summary
		wg  sync.WaitGroup
	)
	for range min(workers, max(len(ops), 1)) {
		wg.Go(func() {
			for op := range jobs {
				r := c.Do(ctx, op)
				mu.Lock()
				if r.OK() {
					sum.OK++
				} else {
					sum.Failed++
				}
				if report != nil {
					report(r)
				}
				mu.Unlock()
			}
		})
	}
	for _, op := range ops {
		jobs <- op
	}
	close(jobs)
	wg.Wait()
	return sum
}
