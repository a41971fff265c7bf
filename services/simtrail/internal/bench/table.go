package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints the run as one table: a header naming the machine and
// the commit, then one line per figure with its SPEC §9 bar where it has
// one.
func (r *Result) WriteTable(w io.Writer) error {
	m := r.Machine
	o := r.Opts
	fmt.Fprintf(w, "simtrail bench — commit %s — %s\n", m.Commit, r.Started.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "machine: %d CPUs (nproc), %s, %s\n", m.CPUs, m.CPUModel, m.Go)
	fmt.Fprintf(w, "load: %s events, %s SIMs; ingest %d connections × %s each; queries %d clients × %s; freshness %.0f webhooks/s × %s; total %s\n\n",
		group(int64(o.Events)), group(int64(o.Sims)), o.Concurrency, o.IngestDuration, o.QueryClients, o.QueryDuration,
		o.FreshRate, o.FreshDuration, r.Took.Round(time.Second))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	row("PHASE", "MEASUREMENT", "RESULT", "BAR (SPEC §9)", "MET")
	row("-----", "-----------", "------", "-------------", "---")
	if in := r.Ingest; in != nil {
		row("ingest", "bare echo handler (200 only)", fmt.Sprintf("%s req/s  p50 %s  p99 %s", group(int64(in.Echo.OKRate())),
			ms(in.Echo.Latency.Quantile(.5)), ms(in.Echo.Latency.Quantile(.99))), "", "")
		row("ingest", "simtrail ingest, durable JetStream ack", fmt.Sprintf("%s webhooks/s  p50 %s  p99 %s  non-2xx %d", group(int64(in.Ingest.OKRate())),
			ms(in.Ingest.Latency.Quantile(.5)), ms(in.Ingest.Latency.Quantile(.99)), in.Ingest.Sent-in.Ingest.OK), "", "")
		row("ingest", "ratio ingest / echo", fmt.Sprintf("%.2f", in.Ratio()), "≥ 0.40", met(in.Ratio() >= 0.4))
	}
	if rb := r.Rebuild; rb != nil {
		row("rebuild", "fill: parse + async publish to JetStream", fmt.Sprintf("%s events in %s (%s/s)", group(int64(rb.Events)),
			secs(rb.FillTook), group(int64(rate(rb.Events, rb.FillTook)))), "", "")
		row("rebuild", "SQLite baseline: one sim_event row per event", fmt.Sprintf("%s rows/s (%s)", group(int64(rb.BaselineRate())), secs(rb.BaselineTook)), "", "")
		for _, b := range rb.Builds {
			ratio := b.Rate() / rb.BaselineRate()
			// The one-million-in-a-minute bar scales to the event count.
			perMillion := time.Duration(float64(b.Took) * 1e6 / float64(max(b.Applied, 1)))
			row("rebuild", "projection.Build "+b.Name+" from seq 1",
				fmt.Sprintf("%s events/s (%s events in %s)  ratio %.2f", group(int64(b.Rate())), group(int64(b.Applied)), secs(b.Took), ratio),
				"ratio ≥ 0.50, 1M < 60 s", met(ratio >= 0.5 && perMillion < time.Minute))
		}
	}
	for _, q := range r.Queries {
		bar, ok := "", ""
		if q.Bar {
			bar, ok = "p99 ≤ 5 ms", met(q.Latency.Quantile(.99) <= 5*time.Millisecond && q.Non200 == 0)
		}
		res := fmt.Sprintf("p50 %s  p99 %s  %s q/s", ms(q.Latency.Quantile(.5)), ms(q.Latency.Quantile(.99)), group(int64(q.Rate())))
		if q.Unanswered > 0 {
			res += fmt.Sprintf("  %s due, unanswered at the end", group(q.Unanswered))
		}
		if q.Non200 > 0 {
			res += fmt.Sprintf("  non-200 %d (%s)", q.Non200, clip(q.FirstBad, 60))
		}
		row("queries", q.Name, res, bar, ok)
	}
	for _, f := range r.Freshness {
		res := fmt.Sprintf("p50 %s  p99 %s  max %s  (%d webhooks, %.0f/s sent)", ms(f.Latency.Quantile(.5)), ms(f.Latency.Quantile(.99)),
			ms(f.Latency.Max()), f.Webhooks, f.Load.Rate())
		if f.Missed > 0 {
			res += fmt.Sprintf("  never visible %d", f.Missed)
		}
		row("freshness", "2xx → visible in "+f.Model, res, "p99 ≤ 100 ms", met(f.Latency.Quantile(.99) <= 100*time.Millisecond && f.Missed == 0))
	}
	for _, pm := range r.Phases {
		row("memory", "max VmRSS sampled during "+pm.Phase, mib(pm.MaxRSS), "", "")
	}
	row("memory", "process peak (VmHWM), all services in-process", mib(r.PeakRSS), "bounded", "")
	for _, pm := range r.Phases {
		c := pm.CPU
		steal := "unknown"
		if c.StealPercent >= 0 {
			steal = fmt.Sprintf("%.1f %%", c.StealPercent)
		}
		row("cpu", "during "+pm.Phase, fmt.Sprintf("simtrail %.2f of %d CPUs over %s; taken by the host (steal) %s", c.Cores(), r.Machine.CPUs, secs(c.Wall), steal), "", "")
	}
	return tw.Flush()
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/1e6)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func mib(b int64) string { return fmt.Sprintf("%d MiB", b>>20) }

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// group formats n with thousands separators.
func group(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
