package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/natsx"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func newTailCmd() *cobra.Command {
	var (
		nf       natsFlags
		subjects []string
		kinds    []string
		start    string
		follow   bool
	)
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print stored events as JSON lines",
		Long: `tail reads the SIMTRAIL stream with an ordered consumer and prints one JSON
object per message: {"seq","subject","stored_at","event"}. --start is "all"
(the beginning, default), "new", a stream sequence, an RFC 3339 time, or a
duration ago such as 2h. Without --follow it stops at the end of the log.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filters, err := tailFilters(subjects, kinds)
			if err != nil {
				return err
			}
			occ := jetstream.OrderedConsumerConfig{FilterSubjects: filters}
			if err := applyStart(&occ, start, time.Now()); err != nil {
				return err
			}
			nc, err := natsx.Connect(nf.conn("simtrail-tail"))
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			return tail(cmd.Context(), js, occ, follow, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	nf.register(fs, "nats://127.0.0.1:4222")
	fs.StringSliceVar(&subjects, "subject", nil, "subject filter(s), default simtrail.events.>")
	fs.StringSliceVar(&kinds, "kind", nil, "only these kinds (usage, threshold, status, imei, pool, lifecycle, other)")
	fs.StringVar(&start, "start", "all", `where to start: all, new, a sequence, an RFC 3339 time, or a duration ago ("2h")`)
	fs.BoolVar(&follow, "follow", false, "keep waiting for new events")
	return cmd
}

func tailFilters(subjects, kinds []string) ([]string, error) {
	if len(kinds) == 0 {
		if len(subjects) == 0 {
			return []string{events.EventsFilter}, nil
		}
		return subjects, nil
	}
	if len(subjects) > 0 {
		return nil, errors.New("use --subject or --kind, not both")
	}
	var out []string
	for _, k := range kinds {
		if _, ok := events.ParseKind(k); !ok {
			return nil, fmt.Errorf("unknown kind %q (want one of %s)", k, strings.Join(events.Kinds, ", "))
		}
		out = append(out, "simtrail.events."+k+".>")
	}
	return out, nil
}

func applyStart(c *jetstream.OrderedConsumerConfig, start string, now time.Time) error {
	switch start {
	case "", "all":
		c.DeliverPolicy = jetstream.DeliverAllPolicy
		return nil
	case "new":
		c.DeliverPolicy = jetstream.DeliverNewPolicy
		return nil
	}
	if seq, err := strconv.ParseUint(start, 10, 64); err == nil && seq > 0 {
		c.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		c.OptStartSeq = seq
		return nil
	}
	if t, err := time.Parse(time.RFC3339, start); err == nil {
		c.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		c.OptStartTime = &t
		return nil
	}
	if d, err := time.ParseDuration(start); err == nil && d > 0 {
		t := now.Add(-d)
		c.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		c.OptStartTime = &t
		return nil
	}
	return fmt.Errorf("--start %q: want all, new, a sequence, an RFC 3339 time or a duration", start)
}

type tailLine struct {
	Seq      uint64          `json:"seq"`
	Subject  string          `json:"subject"`
	StoredAt time.Time       `json:"stored_at"`
	Event    json.RawMessage `json:"event,omitempty"`
	Error    string          `json:"error,omitempty"`
}

var jsonOpts = protojson.MarshalOptions{UseProtoNames: true}

func tail(ctx context.Context, js jetstream.JetStream, occ jetstream.OrderedConsumerConfig, follow bool, w io.Writer) error {
	cons, err := js.OrderedConsumer(ctx, events.StreamName, occ)
	if err != nil {
		return fmt.Errorf("ordered consumer: %w", err)
	}
	enc := json.NewEncoder(w)
	for {
		wait := 2 * time.Second
		if follow {
			wait = 30 * time.Second
		}
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(wait))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fetch: %w", err)
		}
		n := 0
		var pending uint64
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return err
			}
			pending = meta.NumPending
			line := tailLine{Seq: meta.Sequence.Stream, Subject: m.Subject(), StoredAt: meta.Timestamp.UTC()}
			var msg proto.Message = &simtrailv1.Event{}
			if strings.HasPrefix(m.Subject(), "simtrail.alerts.") {
				msg = &simtrailv1.ThresholdCrossed{}
			}
			if err := proto.Unmarshal(m.Data(), msg); err != nil {
				line.Error = "decode: " + err.Error()
			} else if b, err := jsonOpts.Marshal(msg); err == nil {
				line.Event = b
			}
			if err := enc.Encode(line); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if !follow && (n == 0 || pending == 0) {
			return nil
		}
	}
}
