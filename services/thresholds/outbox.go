package thresholds

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/projection"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Alert CloudEvents attributes.
const (
	AlertCEType   = "io.simtrail.alert.threshold.v1"
	AlertCESource = "/simtrail/thresholds"
)

// publishBatch is how many outbox rows are published before they are
// marked in one transaction.
const publishBatch = 256

// Publisher drains the outbox: it publishes every pending row as a
// ThresholdCrossed event, waits for JetStream's ack and only then marks the
// row published. A crash between the ack and the mark republishes the row
// with the same Nats-Msg-Id, which JetStream's duplicate window drops, so
// each (subject, period, level) appears once on the alert subjects.
type Publisher struct {
	r    *projection.Runner
	js   jetstream.JetStream
	log  *slog.Logger
	wake chan struct{}
}

// NewPublisher returns a publisher for the outbox of r's read model.
func NewPublisher(r *projection.Runner, js jetstream.JetStream, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{r: r, js: js, log: log.With("component", "thresholds-outbox"), wake: make(chan struct{}, 1)}
}

// Notify wakes Run; wire it as projection.Config.AfterCommit (it never blocks).
func (p *Publisher) Notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run publishes pending rows until ctx ends, on Notify or every second.
func (p *Publisher) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if err := p.Flush(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("publish alerts", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-t.C:
		}
	}
}

type outboxRow struct {
	seq                                int64
	alertID, st, key, provider, period string
	level                              int
	source                             string
	crossedAt                          int64
	used, allowed                      sql.NullInt64
	causeSeq                           uint64
	causeEvent                         string
}

// Flush publishes every pending row once and returns when none is left.
func (p *Publisher) Flush(ctx context.Context) error {
	for {
		db := p.r.DB()
		rows, err := pending(ctx, db.Reader)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		futs := make([]jetstream.PubAckFuture, 0, len(rows))
		for _, row := range rows {
			msg, err := alertMsg(row)
			if err != nil {
				return err
			}
			f, err := p.js.PublishMsgAsync(msg)
			if err != nil {
				return fmt.Errorf("publish alert: %w", err)
			}
			futs = append(futs, f)
		}
		done := 0
		for i, f := range futs {
			select {
			case <-f.Ok():
				done = i + 1
			case err := <-f.Err():
				if done > 0 {
					_ = markPublished(ctx, db.Writer, rows[:done])
				}
				return fmt.Errorf("publish alert ack: %w", err)
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Second):
				return fmt.Errorf("publish alert ack: timeout")
			}
		}
		if err := markPublished(ctx, db.Writer, rows); err != nil {
			return err
		}
	}
}

func pending(ctx context.Context, db *sql.DB) ([]outboxRow, error) {
	rs, err := db.QueryContext(ctx, `SELECT seq, alert_id, subject_type, subject_key, provider, period_key, level, source,
			crossed_at, used, allowed, cause_seq, cause_event_id
		FROM outbox WHERE published = 0 ORDER BY seq LIMIT ?`, publishBatch)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rs.Close()
	var out []outboxRow
	for rs.Next() {
		var r outboxRow
		if err := rs.Scan(&r.seq, &r.alertID, &r.st, &r.key, &r.provider, &r.period, &r.level, &r.source,
			&r.crossedAt, &r.used, &r.allowed, &r.causeSeq, &r.causeEvent); err != nil {
			return nil, fmt.Errorf("scan outbox: %w", err)
		}
		out = append(out, r)
	}
	return out, rs.Err()
}

func markPublished(ctx context.Context, w *sql.DB, rows []outboxRow) error {
	ids := make([]string, len(rows))
	args := make([]any, len(rows))
	for i, r := range rows {
		ids[i] = "?"
		args[i] = r.seq
	}
	if _, err := w.ExecContext(ctx, `UPDATE outbox SET published = 1 WHERE seq IN (`+strings.Join(ids, ",")+`)`, args...); err != nil {
		return fmt.Errorf("mark outbox published: %w", err)
	}
	return nil
}

func alertMsg(r outboxRow) (*nats.Msg, error) {
	prov, _ := events.ParseProvider(r.provider)
	tc := &simtrailv1.ThresholdCrossed{
		Id:            r.alertID,
		Provider:      prov,
		PeriodId:      r.period,
		LevelPercent:  int32(r.level),
		Source:        r.source,
		CrossedAt:     timestamppb.New(time.Unix(0, r.crossedAt)),
		CauseSequence: r.causeSeq,
		CauseEventId:  r.causeEvent,
	}
	if r.st == subjectPool {
		tc.PoolId = r.key
	} else {
		tc.Iccid = r.key
	}
	if r.used.Valid {
		tc.UsedBytes = &r.used.Int64
	}
	if r.allowed.Valid {
		tc.AllowedBytes = &r.allowed.Int64
	}
	b, err := proto.Marshal(tc)
	if err != nil {
		return nil, fmt.Errorf("marshal alert: %w", err)
	}
	m := nats.NewMsg(events.AlertSubject("threshold", prov, r.key))
	m.Data = b
	m.Header.Set(events.HeaderMsgID, r.alertID)
	m.Header.Set(events.HeaderContentType, events.ContentType)
	m.Header.Set(events.HeaderSpecVersion, "1.0")
	m.Header.Set(events.HeaderID, r.alertID)
	m.Header.Set(events.HeaderSource, AlertCESource)
	m.Header.Set(events.HeaderType, AlertCEType)
	m.Header.Set(events.HeaderSubject, r.key)
	m.Header.Set(events.HeaderTime, time.Unix(0, r.crossedAt).UTC().Format(time.RFC3339Nano))
	return m, nil
}

// MarkOutboxPublished marks every pending outbox row caused by an event at
// or before stream sequence upToSeq as published, without publishing it.
//
// A rebuild folds the whole log again into a fresh database, so its outbox
// holds every crossing in history. Call this on the fresh database with the
// live model's position before it is swapped in (and before a Publisher
// sees it): those alerts were already published by the live model, and a
// rebuilt model must not send history again. Rows caused by later events
// stay pending and are published normally (a row the old model also sent
// carries the same Nats-Msg-Id, so JetStream drops the copy within its
// duplicate window).
func MarkOutboxPublished(ctx context.Context, db *sql.DB, upToSeq uint64) error {
	if _, err := db.ExecContext(ctx, `UPDATE outbox SET published = 1 WHERE published = 0 AND cause_seq <= ?`, upToSeq); err != nil {
		return fmt.Errorf("mark outbox published: %w", err)
	}
	return nil
}
