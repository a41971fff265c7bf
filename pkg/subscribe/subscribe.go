// Package subscribe lets another service follow the simtrail event log in a
// few lines: a durable JetStream pull consumer on the SIMTRAIL stream, typed
// decoding of every message (canonical Event, derived ThresholdCrossed
// alert, quarantined body), explicit acks, bounded redelivery with backoff
// and a poison callback.
//
//	sub, err := subscribe.New(ctx, js, subscribe.Config{
//		Durable:  "billing",
//		Subjects: []string{"simtrail.events.usage.>"},
//		Start:    subscribe.All(), // or FromSequence(n), FromTime(t), OnlyNew()
//	})
//	if err != nil { … }
//	err = sub.Run(ctx, func(ctx context.Context, m subscribe.Message) error {
//		fmt.Println(m.Seq, m.Subject, m.Event.GetSim().GetUsage().GetUsedBytes())
//		return nil // ack; an error naks with backoff
//	})
//
// # Delivery semantics
//
// At least once. A message is acknowledged (and the ack confirmed by the
// server) only after the handler returned nil, so a crash between the two
// redelivers it: make the handler idempotent by Message.ID (the
// deterministic event or alert id, also Nats-Msg-Id).
//
// A handler error naks the message with a delay from Config.Backoff. After
// Config.MaxDeliver failed deliveries, or at once for an error wrapped with
// Permanent, the message is terminated (never redelivered) and passed to
// Config.OnPoison. A payload that does not decode is poison at once. A
// message delivered more than MaxDeliver times without any answer (the
// process died or the handler outlived AckWait each time) is also poisoned
// when it next arrives, so nothing is dropped silently by the server.
//
// # Ordering
//
// Messages arrive in stream order. With the default MaxAckPending of 1 the
// server hands out the next message only after the current one is acked or
// terminated, so processing is strictly ordered, even across retries. A
// larger MaxAckPending raises throughput but a nak'd message is then
// redelivered after its successors; only raise it when the handler does not
// depend on order (usage snapshots are state, not deltas: keep the newest by
// Event.OccurredAt and order does not matter).
//
// # Start position
//
// Config.Start applies when the durable consumer is created. Once it exists
// the server remembers what was acked and a restart resumes after it; Start
// is then ignored. To replay, delete the durable (nats consumer rm SIMTRAIL
// <name>) or use a new name; with Durable empty the consumer is ephemeral
// and always starts at Start.
package subscribe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
)

// Start is where a new consumer begins reading the stream.
type Start struct {
	policy jetstream.DeliverPolicy
	seq    uint64
	t      time.Time
}

// All starts at the first message still in the stream (the default).
func All() Start { return Start{policy: jetstream.DeliverAllPolicy} }

// FromSequence starts at stream sequence seq (1 is the first message ever).
func FromSequence(seq uint64) Start {
	return Start{policy: jetstream.DeliverByStartSequencePolicy, seq: seq}
}

// FromTime starts at the first message stored at or after t. It is the time
// JetStream stored the message, not the provider's occurred-at.
func FromTime(t time.Time) Start { return Start{policy: jetstream.DeliverByStartTimePolicy, t: t} }

// OnlyNew delivers only messages stored after the consumer is created.
func OnlyNew() Start { return Start{policy: jetstream.DeliverNewPolicy} }

// LastPerSubject starts with the newest message of every matching subject,
// then follows new ones: the current state of each SIM, then changes.
func LastPerSubject() Start { return Start{policy: jetstream.DeliverLastPerSubjectPolicy} }

// Handler processes one message. Returning nil acknowledges it; an error
// naks it for redelivery (or poisons it, see the package comment).
type Handler func(ctx context.Context, m Message) error

// Config configures a Subscriber. Only what differs from the defaults needs
// to be set.
type Config struct {
	// Durable is the consumer name; the server keeps its position across
	// restarts and every process using the name shares the work. Empty
	// means an ephemeral consumer, removed InactiveThreshold after the
	// last process stops.
	Durable string
	// Subjects filters the stream; default simtrail.events.>.
	Subjects []string
	// Start is where a new consumer begins; default All().
	Start Start
	// Stream defaults to SIMTRAIL.
	Stream string
	// MaxDeliver bounds the deliveries of one message; default 5.
	MaxDeliver int
	// Backoff is the nak delay after the 1st, 2nd, … failed delivery; the
	// last entry repeats. Default 1s, 5s, 30s.
	Backoff []time.Duration
	// AckWait is how long the server waits for an answer before
	// redelivering; default 30s. A handler that may run longer must be
	// given more.
	AckWait time.Duration
	// MaxAckPending bounds unacknowledged messages; default 1 (strict
	// order, see the package comment).
	MaxAckPending int
	// Batch is how many messages are pulled ahead; default 64 (only
	// MaxAckPending of them are outstanding at the server).
	Batch int
	// InactiveThreshold removes an ephemeral consumer after this much
	// idleness; default 5m. Ignored for durables.
	InactiveThreshold time.Duration
	// OnPoison, when set, is told about every message that was
	// terminated: undecodable, permanently failing or out of deliveries.
	// The message is already terminated when it is called.
	OnPoison func(ctx context.Context, m Message, err error)
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Defaults applied by New.
const (
	DefaultMaxDeliver        = 5
	DefaultAckWait           = 30 * time.Second
	DefaultBatch             = 64
	DefaultInactiveThreshold = 5 * time.Minute
)

// DefaultBackoff is the nak delay schedule used when Config.Backoff is empty.
var DefaultBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}

func (c *Config) setDefaults() {
	if len(c.Subjects) == 0 {
		c.Subjects = []string{events.EventsFilter}
	}
	if c.Start == (Start{}) {
		c.Start = All()
	}
	if c.Stream == "" {
		c.Stream = events.StreamName
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if len(c.Backoff) == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 1
	}
	if c.Batch <= 0 {
		c.Batch = DefaultBatch
	}
	if c.InactiveThreshold <= 0 {
		c.InactiveThreshold = DefaultInactiveThreshold
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// ErrPermanent marks handler errors that retrying cannot fix; see Permanent.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so that Run poisons the message at once instead of
// retrying it.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// Subscriber is a consumer of the SIMTRAIL stream. Run it once; to process in
// parallel, run several Subscribers (processes) with the same Durable.
type Subscriber struct {
	cfg  Config
	js   jetstream.JetStream
	cons jetstream.Consumer
	log  *slog.Logger
}

// New creates the consumer, or binds to the existing durable of that name
// (keeping its position and start policy, updating the other settings).
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*Subscriber, error) {
	cfg.setDefaults()
	cc := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   "simtrail subscriber (pkg/subscribe)",
		DeliverPolicy: cfg.Start.policy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxAckPending: cfg.MaxAckPending,
		// Deliveries are bounded by Run, not by the server: the server
		// would drop an exhausted message with only an advisory, while
		// Run terminates it and reports it to OnPoison.
		MaxDeliver: -1,
	}
	switch cfg.Start.policy {
	case jetstream.DeliverByStartSequencePolicy:
		cc.OptStartSeq = cfg.Start.seq
	case jetstream.DeliverByStartTimePolicy:
		t := cfg.Start.t.UTC()
		cc.OptStartTime = &t
	}
	if len(cfg.Subjects) == 1 {
		cc.FilterSubject = cfg.Subjects[0]
	} else {
		cc.FilterSubjects = cfg.Subjects
	}
	if cfg.Durable == "" {
		cc.InactiveThreshold = cfg.InactiveThreshold
	} else if cons, err := js.Consumer(ctx, cfg.Stream, cfg.Durable); err == nil {
		// The start policy of an existing consumer cannot change, and the
		// server's position is the truth: keep them.
		old := cons.CachedInfo().Config
		cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = old.DeliverPolicy, old.OptStartSeq, old.OptStartTime
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("look up consumer %s: %w", cfg.Durable, err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, cc)
	if err != nil {
		return nil, fmt.Errorf("create consumer %q on %s: %w", cfg.Durable, cfg.Stream, err)
	}
	return &Subscriber{cfg: cfg, js: js, cons: cons, log: cfg.Logger.With("consumer", cons.CachedInfo().Name)}, nil
}

// Consumer is the underlying JetStream consumer (for Info, lag and such).
func (s *Subscriber) Consumer() jetstream.Consumer { return s.cons }

// Run delivers messages to h one at a time until ctx is done (then it
// returns nil) or the consumer is deleted. A message being handled when ctx
// ends, and any message already pulled but not yet handled, is nak'd so that
// it is redelivered at once rather than after AckWait.
func (s *Subscriber) Run(ctx context.Context, h Handler) error {
	it, err := s.cons.Messages(jetstream.PullMaxMessages(s.cfg.Batch))
	if err != nil {
		return fmt.Errorf("start pulling: %w", err)
	}
	defer s.stop(it)
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		switch {
		case ctx.Err() != nil, errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return nil
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			return fmt.Errorf("pull messages: %w", err)
		case err != nil:
			// Missed heartbeats and the like: the iterator reconnects.
			s.log.Warn("pull messages", "err", err)
			continue
		}
		s.handle(ctx, msg, h)
	}
}

// stop ends the pull subscription so that a successor starts cleanly: the
// messages already pulled are nak'd, and the server has processed the
// unsubscribe before Run returns, so it hands no more messages to the
// pull request of this (now deaf) subscription, where they would sit until
// AckWait.
func (s *Subscriber) stop(it jetstream.MessagesContext) {
	it.Drain()
	for {
		msg, err := it.Next(jetstream.NextMaxWait(time.Second))
		if err != nil {
			break
		}
		_ = msg.Nak()
	}
	if c, ok := it.(interface{ Closed() <-chan struct{} }); ok {
		select {
		case <-c.Closed():
		case <-time.After(5 * time.Second):
		}
	}
	if nc := s.js.Conn(); nc != nil {
		_ = nc.FlushTimeout(5 * time.Second)
	}
}

func (s *Subscriber) handle(ctx context.Context, msg jetstream.Msg, h Handler) {
	m, err := Decode(msg.Subject(), msg.Data())
	m.Headers = msg.Headers()
	if md, merr := msg.Metadata(); merr == nil {
		m.Seq, m.Delivered, m.Stored = md.Sequence.Stream, md.NumDelivered, md.Timestamp
	}
	if m.ID == "" {
		m.ID = m.Headers.Get(events.HeaderMsgID)
	}
	if errors.Is(err, ErrDecode) {
		s.poison(ctx, msg, m, err)
		return
	}
	if m.Delivered > uint64(s.cfg.MaxDeliver) {
		s.poison(ctx, msg, m, fmt.Errorf("delivered %d times without an answer", m.Delivered))
		return
	}
	herr := h(ctx, m)
	if herr == nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := msg.DoubleAck(actx); err != nil {
			// Not fatal: the server redelivers after AckWait and the
			// handler is idempotent by id.
			s.log.Warn("ack", "seq", m.Seq, "err", err)
		}
		return
	}
	if ctx.Err() != nil {
		_ = msg.Nak()
		return
	}
	if errors.Is(herr, ErrPermanent) || m.Delivered >= uint64(s.cfg.MaxDeliver) {
		s.poison(ctx, msg, m, herr)
		return
	}
	delay := s.cfg.Backoff[min(max(int(m.Delivered), 1), len(s.cfg.Backoff))-1]
	s.log.Info("handler failed, will retry", "seq", m.Seq, "subject", m.Subject, "delivered", m.Delivered, "delay", delay, "err", herr)
	if err := msg.NakWithDelay(delay); err != nil {
		s.log.Warn("nak", "seq", m.Seq, "err", err)
	}
}

func (s *Subscriber) poison(ctx context.Context, msg jetstream.Msg, m Message, cause error) {
	reason := cause.Error()
	if len(reason) > 200 {
		reason = reason[:200]
	}
	if err := msg.TermWithReason(reason); err != nil {
		s.log.Warn("term", "seq", m.Seq, "err", err)
	}
	s.log.Error("poison message terminated", "seq", m.Seq, "subject", m.Subject, "id", m.ID, "err", cause)
	if s.cfg.OnPoison != nil {
		s.cfg.OnPoison(ctx, m, cause)
	}
}
