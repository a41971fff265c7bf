package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/natsx"
	"github.com/simtrail/simtrail/pkg/projection"
	"github.com/simtrail/simtrail/services/thresholds"
	"github.com/simtrail/simtrail/services/timeline"
	"github.com/spf13/cobra"
)

// maxBuildBatch bounds --batch-size: a build holds about four batches of
// events at once (the one applied, the one decoded, the pull buffer).
const maxBuildBatch = 1_000_000

func newRebuildCmd() *cobra.Command {
	var (
		nf      natsFlags
		tf      thresholdFlags
		into    string
		until   string
		baseURL string
		force   bool
		batch   int
	)
	cmd := &cobra.Command{
		Use:   "rebuild <timeline|thresholds>",
		Short: "Rebuild a read model from the event log, online or offline into a file, optionally as of a past time",
		Long: `rebuild replays the log from sequence 1 into a read model.

With --url it asks the running service to rebuild online (POST
/v1/projections/<name>/rebuild) and follows the progress until the swap.
Without --url it builds offline into --into, a new SQLite file, reading the
stream directly; --until <RFC 3339 time> keeps only the events simtrail had
stored by then ("what did we know on the 3rd?"). A file built by the
thresholds projection offline never re-announces historical alerts.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if name != timeline.Name && name != thresholds.Name {
				return fmt.Errorf("unknown projection %q (want %s or %s)", name, timeline.Name, thresholds.Name)
			}
			if baseURL != "" {
				if into != "" || until != "" || cmd.Flags().Changed("batch-size") {
					return errors.New("--url rebuilds the live model; --into, --until and --batch-size are for offline builds")
				}
				return rebuildOnline(cmd.Context(), strings.TrimRight(baseURL, "/"), name, cmd.ErrOrStderr())
			}
			if into == "" {
				return errors.New("offline rebuild needs --into FILE (or --url for the running service)")
			}
			if batch < 0 || batch > maxBuildBatch {
				return fmt.Errorf("--batch-size %d: want 0 (the projection's own) up to %d", batch, maxBuildBatch)
			}
			var untilT time.Time
			if until != "" {
				t, err := time.Parse(time.RFC3339, until)
				if err != nil {
					return fmt.Errorf("--until: %w", err)
				}
				untilT = t
			}
			if _, err := os.Stat(into); err == nil && !force {
				return fmt.Errorf("%s exists; use --force to replace it", into)
			}
			if force {
				for _, s := range []string{"", "-wal", "-shm"} {
					_ = os.Remove(into + s)
				}
			}
			var p projection.Projector
			if name == timeline.Name {
				p = timeline.NewProjector()
			} else {
				opts, err := tf.options()
				if err != nil {
					return err
				}
				if p, err = thresholds.NewProjector(*opts); err != nil {
					return err
				}
			}
			return rebuildOffline(cmd.Context(), nf.conn("simtrail-rebuild"), p, into, projection.BuildOptions{Until: untilT, BatchSize: batch}, cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	nf.register(fs, "nats://127.0.0.1:4222")
	tf.register(fs)
	fs.StringVar(&into, "into", "", "offline: SQLite file to build")
	fs.StringVar(&until, "until", "", "offline: only events stored at or before this RFC 3339 time")
	fs.StringVar(&baseURL, "url", "", "online: base URL of the running service, e.g. http://127.0.0.1:8080")
	fs.BoolVar(&force, "force", false, "offline: replace an existing --into file")
	fs.IntVar(&batch, "batch-size", 0, fmt.Sprintf("offline: events per transaction; fewer use less memory, more commit less often (default: the projection's own, %d for timeline, %d for thresholds)",
		projection.DefaultBuildBatchSize, thresholds.BuildBatchSize))
	return cmd
}

func newBar(w io.Writer, total int64, desc string) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionFullWidth(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
}

// rebuildOffline builds p into the new file into; opts' Until and
// BatchSize are passed on (zero: all events, the projection's batch size).
func rebuildOffline(ctx context.Context, cc natsx.ConnConfig, p projection.Projector, into string, opts projection.BuildOptions, w io.Writer) error {
	nc, err := natsx.Connect(cc)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	db, err := projection.Open(ctx, into, p.Migrations())
	if err != nil {
		return err
	}
	defer db.Close()
	bar := newBar(w, -1, "rebuilding "+p.Name())
	started := time.Now()
	opts.Progress = func(pr projection.Progress) {
		if total := int64(pr.Applied) + int64(pr.Pending); total != bar.GetMax64() {
			bar.ChangeMax64(total)
		}
		_ = bar.Set64(int64(pr.Applied))
	}
	pos, err := projection.Build(ctx, js, events.StreamName, p, db, opts)
	if err != nil {
		return err
	}
	_ = bar.Finish()
	if sp, ok := p.(projection.SwapPreparer); ok {
		// Nothing of what this file holds is news: mark it announced.
		if err := sp.PrepareSwap(ctx, db.Writer, nil, pos); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "built %s into %s up to stream sequence %d in %s\n", p.Name(), into, pos, time.Since(started).Round(time.Millisecond))
	return nil
}

type projectionsAnswer struct {
	Projections []projection.Status `json:"projections"`
}

func rebuildOnline(ctx context.Context, base, name string, w io.Writer) error {
	client := &http.Client{Timeout: 10 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/projections/"+name+"/rebuild", nil)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("rebuild refused: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	bar := newBar(w, -1, "rebuilding "+name+" online")
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/projections", nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		var ans projectionsAnswer
		err = json.NewDecoder(resp.Body).Decode(&ans)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("read progress: %w", err)
		}
		for _, st := range ans.Projections {
			if st.Name != name {
				continue
			}
			rb := st.Rebuild
			if rb.Last > 0 && bar.GetMax64() != int64(rb.Last) {
				bar.ChangeMax64(int64(rb.Last))
			}
			_ = bar.Set64(int64(rb.Position))
			switch rb.State {
			case "done":
				_ = bar.Finish()
				fmt.Fprintf(w, "rebuilt %s online at %.0f events/s; serving the new model at position %d\n", name, rb.EventsPerSecond, st.Position)
				return nil
			case "failed":
				return fmt.Errorf("rebuild failed: %s", rb.Error)
			}
		}
	}
}
