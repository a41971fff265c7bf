// Package alertwatcher is an example simtrail subscriber: it follows the
// derived threshold alerts (simtrail.alerts.threshold.>) with watermill's
// router and the watermill-nats JetStream subscriber, and hands each alert
// to a Notifier (a JSON line on stdout, or a webhook).
//
// Delivery: a durable, explicitly acknowledged JetStream consumer on the
// existing SIMTRAIL stream. A notifier error is retried in process with
// exponential backoff (watermill's Retry middleware); when the retries are
// used up, or at once for a permanent error (an undecodable payload, a 4xx
// from the webhook), watermill's PoisonQueue middleware publishes the
// message to the dead-letter subject with the reason in the
// "reason_poisoned" header, and acknowledges the original. The dead-letter
// subject (default simtrail.deadletter.alertwatcher) is inside simtrail.>,
// so the SIMTRAIL stream stores it next to the log: inspect it with
// `nats stream view SIMTRAIL --subject simtrail.deadletter.alertwatcher`.
//
// The service never creates or changes the stream. It creates (or updates)
// its own durable push consumer and binds watermill to it: the legacy
// nats.go API that watermill-nats v2 pkg/nats uses deletes a consumer it
// created itself when the subscription is closed, which would forget the
// durable's position on every shutdown.
package alertwatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/subscribe"
)

// Defaults of Config.
const (
	DefaultDurable      = "alertwatcher"
	DefaultTopic        = "simtrail.alerts.threshold.>"
	DefaultPoisonTopic  = "simtrail.deadletter.alertwatcher"
	DefaultMaxRetries   = 5
	DefaultRetryInitial = 500 * time.Millisecond
	DefaultRetryMax     = 10 * time.Second
)

// Config configures the service. Zero values take the defaults.
type Config struct {
	// Durable is the JetStream consumer name (and queue group: replicas
	// with the same name share the alerts).
	Durable string
	// Topic is the subject filter; default simtrail.alerts.threshold.>.
	Topic string
	// PoisonTopic receives messages that failed for good.
	PoisonTopic string
	// DeliverNew makes a newly created consumer start with alerts stored
	// from now on instead of every alert in the log. It only matters the
	// first time the durable is created.
	DeliverNew bool
	// MaxRetries, RetryInitial and RetryMax shape the in-process retries
	// (exponential backoff, factor 2).
	MaxRetries   int
	RetryInitial time.Duration
	RetryMax     time.Duration
	// AckWait is how long JetStream waits for the ack before redelivering;
	// default: twice the worst-case retry time plus a minute.
	AckWait time.Duration
	Logger  *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Durable == "" {
		c.Durable = DefaultDurable
	}
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.PoisonTopic == "" {
		c.PoisonTopic = DefaultPoisonTopic
	}
	if c.MaxRetries <= 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.RetryInitial <= 0 {
		c.RetryInitial = DefaultRetryInitial
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.AckWait <= 0 {
		c.AckWait = 2*time.Duration(c.MaxRetries+1)*(c.RetryMax+10*time.Second) + time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// ErrPermanent marks errors that retrying cannot fix.
var ErrPermanent = errors.New("permanent")

// Permanent wraps err so the alert goes to the dead-letter subject without
// retries.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// Metadata keys the service adds to each watermill message (and so to the
// headers of a dead-lettered copy).
const (
	MetaSubject   = "Simtrail-Subject"
	MetaStreamSeq = "Simtrail-Stream-Seq"
)

// Service is a configured watermill router; Run it.
type Service struct {
	cfg    Config
	router *message.Router
	sub    *wmnats.Subscriber
	pub    *wmnats.Publisher
	notify Notifier
	log    *slog.Logger
}

// New sets up the consumer and the router. subConn and pubConn must be two
// connections owned by the service from now on: watermill drains the
// subscriber's connection and closes the publisher's when the router stops,
// and the dead-letter publisher must still work while the subscriber
// drains.
func New(ctx context.Context, subConn, pubConn *nats.Conn, n Notifier, cfg Config) (*Service, error) {
	cfg.setDefaults()
	s := &Service{cfg: cfg, notify: n, log: cfg.Logger}
	if err := s.ensureConsumer(ctx, subConn); err != nil {
		return nil, err
	}
	wlog := watermill.NewSlogLogger(cfg.Logger.With("component", "watermill"))

	sub, err := wmnats.NewSubscriberWithNatsConn(subConn, wmnats.SubscriberSubscriptionConfig{
		Unmarshaler:      unmarshaler{},
		SubscribersCount: 1,
		// The router's wait for our ack; the server's AckWait is on the
		// consumer. Both cover the worst-case retry time.
		AckWaitTimeout:   cfg.AckWait,
		CloseTimeout:     30 * time.Second,
		SubscribeTimeout: 30 * time.Second,
		QueueGroupPrefix: cfg.Durable,
		// A message the PoisonQueue could not publish is nak'd; wait a
		// little before it comes back.
		NakDelay: wmnats.NewStaticDelay(5 * time.Second),
		JetStream: wmnats.JetStreamConfig{
			AutoProvision: false, // never create or change the stream
			DurablePrefix: cfg.Durable,
			SubscribeOptions: []nats.SubOpt{
				nats.Bind(events.StreamName, cfg.Durable),
				nats.ManualAck(),
			},
		},
	}, wlog)
	if err != nil {
		return nil, fmt.Errorf("create watermill subscriber: %w", err)
	}
	pub, err := wmnats.NewPublisherWithNatsConn(pubConn, wmnats.PublisherPublishConfig{
		Marshaler:         deadLetterMarshaler{durable: cfg.Durable},
		SubjectCalculator: wmnats.DefaultSubjectCalculator,
		JetStream: wmnats.JetStreamConfig{
			AutoProvision:  false,
			PublishOptions: []nats.PubOpt{nats.ExpectStream(events.StreamName)},
		},
	}, wlog)
	if err != nil {
		return nil, fmt.Errorf("create watermill publisher: %w", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, wlog)
	if err != nil {
		return nil, fmt.Errorf("create router: %w", err)
	}
	poison, err := middleware.PoisonQueue(pub, cfg.PoisonTopic)
	if err != nil {
		return nil, fmt.Errorf("poison queue: %w", err)
	}
	// Outermost first: the poison queue sees what is left after the
	// retries; Recoverer turns a panicking notifier into an error.
	router.AddMiddleware(
		poison,
		middleware.Retry{
			MaxRetries:      cfg.MaxRetries,
			InitialInterval: cfg.RetryInitial,
			MaxInterval:     cfg.RetryMax,
			Multiplier:      2,
			ShouldRetry:     func(p middleware.RetryParams) bool { return !errors.Is(p.Err, ErrPermanent) },
			Logger:          wlog,
		}.Middleware,
		middleware.Recoverer,
	)
	router.AddConsumerHandler("alertwatcher", cfg.Topic, sub, s.handle)
	s.router, s.sub, s.pub = router, sub, pub
	return s, nil
}

// ensureConsumer creates or updates the durable push consumer the
// subscriber binds to. The start policy of an existing consumer is kept:
// the server's position is the truth.
func (s *Service) ensureConsumer(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	cc := jetstream.ConsumerConfig{
		Durable:       s.cfg.Durable,
		Description:   "simtrail alertwatcher (watermill)",
		FilterSubject: s.cfg.Topic,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// Push consumer: watermill-nats v2 pkg/nats subscribes with the
		// push API. The deliver subject must be outside simtrail.>.
		DeliverSubject: "_alertwatcher.deliver." + s.cfg.Durable,
		DeliverGroup:   s.cfg.Durable,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        s.cfg.AckWait,
		// One alert at a time: in order, and nothing waits in the client
		// buffer while an earlier alert is being retried.
		MaxAckPending: 1,
		// In-process retries and the poison queue bound the work; the
		// server only redelivers after a crash or an AckWait timeout.
		MaxDeliver: -1,
	}
	if s.cfg.DeliverNew {
		cc.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	if c, err := js.PushConsumer(ctx, events.StreamName, s.cfg.Durable); err == nil {
		old := c.CachedInfo().Config
		cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = old.DeliverPolicy, old.OptStartSeq, old.OptStartTime
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("look up consumer %s: %w", s.cfg.Durable, err)
	}
	if _, err := js.CreateOrUpdatePushConsumer(ctx, events.StreamName, cc); err != nil {
		return fmt.Errorf("create consumer %s: %w", s.cfg.Durable, err)
	}
	return nil
}

// handle decodes one alert and notifies.
func (s *Service) handle(msg *message.Message) error {
	subject := msg.Metadata.Get(MetaSubject)
	m, err := subscribe.Decode(subject, msg.Payload)
	if err != nil {
		return Permanent(err)
	}
	if m.Alert == nil {
		return Permanent(fmt.Errorf("%s carries no ThresholdCrossed", subject))
	}
	var seq uint64
	_, _ = fmt.Sscan(msg.Metadata.Get(MetaStreamSeq), &seq)
	a := AlertFromProto(m.Alert, subject, seq)
	s.log.Info("threshold crossed", "id", a.ID, "provider", a.Provider, "iccid", a.ICCID, "pool", a.PoolID,
		"level", a.LevelPercent, "source", a.Source, "crossed_at", a.CrossedAt, "seq", seq)
	if err := s.notify.Notify(msg.Context(), a); err != nil {
		return fmt.Errorf("notify alert %s: %w", a.ID, err)
	}
	return nil
}

// Run runs the router until ctx is done, then closes it (waiting for the
// alert in hand) and the publisher.
func (s *Service) Run(ctx context.Context) error {
	err := s.router.Run(ctx)
	if cerr := s.pub.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("run router: %w", err)
	}
	return nil
}

// Running is closed when the router has subscribed and is handling alerts.
func (s *Service) Running() chan struct{} { return s.router.Running() }
