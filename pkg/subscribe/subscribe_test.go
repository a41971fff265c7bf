package subscribe_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/natstest"
	"github.com/simtrail/simtrail/pkg/subscribe"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// setup starts a JetStream server with the SIMTRAIL stream.
func setup(t *testing.T) jetstream.JetStream {
	t.Helper()
	srv := natstest.Run(t)
	srv.Stream(t)
	_, js := srv.Conn(t)
	return js
}

// publish stores a usage event for iccid, as ingest would, and returns its
// stream sequence.
func publish(t *testing.T, js jetstream.JetStream, iccid, body string) uint64 {
	t.Helper()
	raw := []byte(body)
	ev := &simtrailv1.Event{
		Id:         events.ID(simtrailv1.Provider_PROVIDER_ROAMIFY, raw),
		Provider:   simtrailv1.Provider_PROVIDER_ROAMIFY,
		Kind:       simtrailv1.Kind_KIND_USAGE,
		Iccid:      iccid,
		OccurredAt: timestamppb.Now(),
		RawBody:    raw,
	}
	data, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return publishRaw(t, js, events.Subject(ev), data, events.Headers(ev))
}

func publishRaw(t *testing.T, js jetstream.JetStream, subject string, data []byte, hdr map[string]string) uint64 {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = data
	for k, v := range hdr {
		msg.Header.Set(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	return ack.Sequence
}

// recorder collects what a handler saw.
type recorder struct {
	mu   sync.Mutex
	msgs []subscribe.Message
}

func (r *recorder) handle(_ context.Context, m subscribe.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return nil
}

func (r *recorder) seqs() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []uint64
	for _, m := range r.msgs {
		s = append(s, m.Seq)
	}
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runner runs sub in the background; stop cancels it and waits for Run.
func runner(t *testing.T, sub *subscribe.Subscriber, h subscribe.Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newSub(t *testing.T, js jetstream.JetStream, cfg subscribe.Config) *subscribe.Subscriber {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sub, err := subscribe.New(ctx, js, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return sub
}

func equal(a, b []uint64) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestDurableResumesWithoutRedelivery(t *testing.T) {
	js := setup(t)
	for i := range 3 {
		publish(t, js, "8944000000000000001", fmt.Sprintf(`{"n":%d}`, i))
	}
	cfg := subscribe.Config{Durable: "billing", Subjects: []string{"simtrail.events.usage.>"}}

	var first recorder
	stop := runner(t, newSub(t, js, cfg), first.handle)
	waitFor(t, "3 messages", func() bool { return len(first.seqs()) == 3 })
	stop()
	if got := first.seqs(); !equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("first run saw %v", got)
	}
	m := first.msgs[0]
	if m.Event == nil || m.Event.GetIccid() != "8944000000000000001" || m.Key != "8944000000000000001" ||
		m.ID != m.Event.GetId() || m.Headers.Get(events.HeaderType) != "io.simtrail.event.usage.v1" || m.Delivered != 1 || m.Stored.IsZero() {
		t.Fatalf("first message badly decoded: %+v", m)
	}

	publish(t, js, "8944000000000000001", `{"n":3}`)
	publish(t, js, "8944000000000000002", `{"n":4}`)
	// A restart with another Start is ignored: the durable's position wins.
	cfg.Start = subscribe.FromSequence(1)
	var second recorder
	stop = runner(t, newSub(t, js, cfg), second.handle)
	waitFor(t, "2 new messages", func() bool { return len(second.seqs()) == 2 })
	// A third publish proves nothing else was pending before it.
	publish(t, js, "8944000000000000002", `{"n":5}`)
	waitFor(t, "3rd message", func() bool { return len(second.seqs()) == 3 })
	stop()
	if got := second.seqs(); !equal(got, []uint64{4, 5, 6}) {
		t.Fatalf("after restart saw %v, want [4 5 6] (no redelivery of acked messages)", got)
	}
}

func TestStartPositions(t *testing.T) {
	js := setup(t)
	for i := range 3 {
		publish(t, js, "8944000000000000001", fmt.Sprintf(`{"n":%d}`, i))
	}
	// Stored times have a resolution finer than this; make the boundary
	// unambiguous without sleeping on a timer: wait for the clock to move.
	mid := time.Now()
	waitFor(t, "clock to advance", func() bool { return time.Now().After(mid) })
	publish(t, js, "8944000000000000002", `{"n":3}`)
	publish(t, js, "8944000000000000001", `{"n":4}`)

	tests := []struct {
		name  string
		start subscribe.Start
		want  []uint64
	}{
		{"all", subscribe.All(), []uint64{1, 2, 3, 4, 5}},
		{"from sequence", subscribe.FromSequence(3), []uint64{3, 4, 5}},
		{"from time", subscribe.FromTime(mid), []uint64{4, 5}},
		{"last per subject", subscribe.LastPerSubject(), []uint64{4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recorder
			stop := runner(t, newSub(t, js, subscribe.Config{Start: tt.start}), r.handle)
			waitFor(t, fmt.Sprint(len(tt.want), " messages"), func() bool { return len(r.seqs()) >= len(tt.want) })
			stop()
			if got := r.seqs(); !equal(got, tt.want) {
				t.Fatalf("saw %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("only new", func(t *testing.T) {
		var r recorder
		stop := runner(t, newSub(t, js, subscribe.Config{Start: subscribe.OnlyNew()}), r.handle)
		seq := publish(t, js, "8944000000000000003", `{"n":"new"}`)
		waitFor(t, "the new message", func() bool { return len(r.seqs()) == 1 })
		stop()
		if got := r.seqs(); !equal(got, []uint64{seq}) {
			t.Fatalf("saw %v, want [%d]", got, seq)
		}
	})
}

type poisoned struct {
	mu   sync.Mutex
	msgs []subscribe.Message
	errs []error
}

func (p *poisoned) record(_ context.Context, m subscribe.Message, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, m)
	p.errs = append(p.errs, err)
}

func (p *poisoned) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs)
}

func TestRetryAndPoison(t *testing.T) {
	js := setup(t)
	garbage := publishRaw(t, js, "simtrail.events.usage.droam.8944000000000000009", []byte{0xff, 0xff, 0xff}, nil)
	flaky := publish(t, js, "8944000000000000001", `{"flaky":true}`)
	failing := publish(t, js, "8944000000000000002", `{"failing":true}`)
	permanent := publish(t, js, "8944000000000000003", `{"permanent":true}`)
	good := publish(t, js, "8944000000000000004", `{"good":true}`)

	var (
		mu       sync.Mutex
		attempts = map[uint64]int{}
		handled  []uint64
	)
	handler := func(_ context.Context, m subscribe.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[m.Seq]++
		if uint64(attempts[m.Seq]) != m.Delivered {
			t.Errorf("seq %d: attempt %d but Delivered %d", m.Seq, attempts[m.Seq], m.Delivered)
		}
		switch m.Seq {
		case flaky:
			if attempts[m.Seq] < 3 {
				return errors.New("downstream busy")
			}
		case failing:
			return errors.New("downstream down")
		case permanent:
			return subscribe.Permanent(errors.New("unknown customer"))
		}
		handled = append(handled, m.Seq)
		return nil
	}
	var p poisoned
	sub := newSub(t, js, subscribe.Config{
		Durable:    "poison-test",
		MaxDeliver: 3,
		Backoff:    []time.Duration{10 * time.Millisecond, 20 * time.Millisecond},
		OnPoison:   p.record,
	})
	stop := runner(t, sub, handler)
	waitFor(t, "good message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == 2
	})
	stop()

	mu.Lock()
	defer mu.Unlock()
	if !equal(handled, []uint64{flaky, good}) {
		t.Errorf("handled %v, want [%d %d] in order", handled, flaky, good)
	}
	if attempts[garbage] != 0 || attempts[flaky] != 3 || attempts[failing] != 3 || attempts[permanent] != 1 {
		t.Errorf("attempts = %v", attempts)
	}
	if p.len() != 3 {
		t.Fatalf("poisoned %d messages, want 3", p.len())
	}
	wantSeq := []uint64{garbage, failing, permanent}
	for i, m := range p.msgs {
		if m.Seq != wantSeq[i] {
			t.Errorf("poison %d: seq %d, want %d", i, m.Seq, wantSeq[i])
		}
	}
	if !errors.Is(p.errs[0], subscribe.ErrDecode) || p.errs[1].Error() != "downstream down" || !errors.Is(p.errs[2], subscribe.ErrPermanent) {
		t.Errorf("poison errors = %v", p.errs)
	}

	// Terminated and acked messages are never delivered again.
	info, err := sub.Consumer().Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 || info.NumRedelivered != 0 {
		t.Errorf("consumer still has work: pending %d ack-pending %d redelivered %d", info.NumPending, info.NumAckPending, info.NumRedelivered)
	}
}
