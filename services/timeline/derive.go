package timeline

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Granularity is a usage bucket size.
type Granularity string

// The bucket sizes of GET /v1/sims/{iccid}/usage.
const (
	Hour  Granularity = "hour"
	Day   Granularity = "day"
	Month Granularity = "month"
)

// MaxBuckets bounds the buckets one usage response may span, so a
// request cannot make the server build an unbounded list.
const MaxBuckets = 10000

// ParseGranularity accepts hour, day or month; empty means day.
func ParseGranularity(s string) (Granularity, bool) {
	switch Granularity(s) {
	case "":
		return Day, true
	case Hour, Day, Month:
		return Granularity(s), true
	}
	return "", false
}

// Floor is the start of the UTC bucket containing t.
func (g Granularity) Floor(t time.Time) time.Time {
	t = t.UTC()
	switch g {
	case Hour:
		return t.Truncate(time.Hour)
	case Month:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	default:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
}

// Next is the start of the bucket after the one starting at start.
func (g Granularity) Next(start time.Time) time.Time {
	switch g {
	case Hour:
		return start.Add(time.Hour)
	case Month:
		return start.AddDate(0, 1, 0)
	default:
		return start.AddDate(0, 0, 1)
	}
}

// Ceil is the smallest bucket boundary at or after t.
func (g Granularity) Ceil(t time.Time) time.Time {
	f := g.Floor(t)
	if f.Equal(t) {
		return f
	}
	return g.Next(f)
}

// countBuckets is how many buckets [from, to) spans, stopping early once
// it exceeds limit.
func (g Granularity) countBuckets(from, to time.Time, limit int) int {
	if g == Day {
		// UTC days are all 24 h long; Sub saturates for ranges of centuries.
		return int(min(to.Sub(from)/(24*time.Hour), time.Duration(limit+1)))
	}
	n := 0
	for s := from; s.Before(to); s = g.Next(s) {
		n++
		if n > limit {
			break
		}
	}
	return n
}

// ParseTime accepts RFC 3339 (any offset, converted to UTC) or YYYY-MM-DD
// (midnight UTC).
func ParseTime(s string) (time.Time, error) {
	// Only a date has this length (RFC 3339 needs at least 20 bytes), so
	// it is tried first and alone: a failed parse allocates its error.
	if len(s) == len(time.DateOnly) {
		if t, err := time.Parse(time.DateOnly, s); err == nil {
			return t, nil
		}
	} else if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor YYYY-MM-DD", s)
}

// Snapshot is one cumulative used-bytes counter at a provider time.
type Snapshot struct {
	At      time.Time
	EventID string
	Used    int64
	// PeriodID names the allowance period; a change means a reset.
	PeriodID string
}

// Delta is usage attributed to the instant of the snapshot that showed it.
type Delta struct {
	At       time.Time
	Bytes    int64
	Location string
}

// SnapshotDeltas turns snapshots sorted by (At, EventID) into usage
// deltas. prev is the snapshot just before the first one (nil when there
// is none: the first counter then counts in full, since counters start at
// zero with the period). A counter that drops, or a new period (both
// period ids known and different), is a reset: the delta is the new value.
func SnapshotDeltas(prev *Snapshot, snaps []Snapshot) []Delta {
	out := make([]Delta, 0, len(snaps))
	for i := range snaps {
		s := &snaps[i]
		out = append(out, Delta{At: s.At, Bytes: snapshotDelta(prev, s), Location: UnknownLocation})
		prev = s
	}
	return out
}

// snapshotDelta is the usage s shows over its predecessor prev (nil: none).
func snapshotDelta(prev, s *Snapshot) int64 {
	if prev == nil {
		return s.Used
	}
	return counterDelta(prev.Used, prev.PeriodID, s.Used, s.PeriodID)
}

// counterDelta is the usage a counter of used bytes in period shows over
// the one before it, prevUsed in prevPeriod: the difference, or used in
// full after a reset (a drop, or both period ids known and different).
// The projector's fold (held.go) and the query-time fold share it.
func counterDelta(prevUsed int64, prevPeriod string, used int64, period string) int64 {
	if used >= prevUsed && !(prevPeriod != "" && period != "" && prevPeriod != period) {
		return used - prevUsed
	}
	return used
}

// dayOf is t's UTC day number (days since 1970-01-01, rounding down also
// before 1970), the usage_day key; from seconds rather than UnixNano, so it
// holds for any year a request may name.
func dayOf(t time.Time) int64 {
	s := t.Unix()
	d := s / 86400
	if s%86400 < 0 {
		d--
	}
	return d
}

// UnknownLocation is the location of usage derived from snapshots, which
// carry no country.
const UnknownLocation = "unknown"

// Bucket is one entry of a usage response.
type Bucket struct {
	Start     string  `json:"start"`
	End       string  `json:"end"`
	DataBytes int64   `json:"data_bytes"`
	Location  *string `json:"location,omitempty"`
}

// BucketDeltas sums deltas into buckets over [from, to) (both on bucket
// boundaries). Without grouping every bucket of the range is listed, zero
// or not; grouped by location only (bucket, location) pairs with usage are
// listed, ordered by start then location. Deltas outside the range are
// ignored.
func BucketDeltas(g Granularity, from, to time.Time, deltas []Delta, byLocation bool) ([]Bucket, int64) {
	sums, total := sumBuckets(nil, g, from, to, deltas, byLocation)
	return bucketsOf(sums, byLocation), total
}

// bucketsOf renders sums as answer buckets (with a location when grouped).
func bucketsOf(sums []bucketSum, grouped bool) []Bucket {
	out := make([]Bucket, len(sums))
	for i, b := range sums {
		out[i] = Bucket{Start: formatTime(b.start), End: formatTime(b.end), DataBytes: b.bytes}
		if grouped {
			loc := b.loc
			out[i].Location = &loc
		}
	}
	return out
}

// usageScratch is the working memory of one usage answer: the deltas read,
// the bucket boundaries and sums. A busy API answers tens of thousands of
// these a second, and allocating them afresh each time was most of an
// answer's garbage, so the handler recycles them (scratchPool).
type usageScratch struct {
	deltas []Delta
	starts []time.Time
	sums   []bucketSum
}

var scratchPool = sync.Pool{New: func() any { return new(usageScratch) }}

// release returns sc to the pool; nothing from it may be used afterwards.
// Oversized slices (a long hourly range) are left to the GC.
func (sc *usageScratch) release() {
	if cap(sc.deltas) > 4*MaxBuckets || cap(sc.starts) > MaxBuckets || cap(sc.sums) > MaxBuckets {
		return
	}
	clear(sc.deltas) // drop the location strings
	clear(sc.sums)
	sc.deltas, sc.starts, sc.sums = sc.deltas[:0], sc.starts[:0], sc.sums[:0]
	scratchPool.Put(sc)
}

// bucketSum is one bucket before rendering; loc is "" unless grouped.
type bucketSum struct {
	start, end time.Time
	bytes      int64
	loc        string
}

// sumBuckets is BucketDeltas without the string formatting, which the
// usage handler does straight into its response buffer. Its slices come
// from sc when sc is not nil (and go back to it for the next answer).
func sumBuckets(sc *usageScratch, g Granularity, from, to time.Time, deltas []Delta, byLocation bool) ([]bucketSum, int64) {
	if sc == nil {
		sc = &usageScratch{}
	}
	starts := sc.starts[:0]
	defer func() { sc.starts = starts }()
	// index finds the bucket holding t (from <= t < to): starts are
	// successive bucket boundaries, so this is g.Floor(t) without the
	// calendar arithmetic.
	var index func(t time.Time) int
	if g == Day {
		const day = 24 * time.Hour
		n := g.countBuckets(from, to, MaxBuckets)
		starts = slices.Grow(starts, n)[:n]
		for i := range starts {
			starts[i] = from.Add(time.Duration(i) * day)
		}
		index = func(t time.Time) int { return int(t.Sub(from) / day) }
	} else {
		for s := from; s.Before(to); s = g.Next(s) {
			starts = append(starts, s)
		}
		index = func(t time.Time) int {
			return sort.Search(len(starts), func(i int) bool { return starts[i].After(t) }) - 1
		}
	}
	end := func(i int) time.Time {
		if i+1 < len(starts) {
			return starts[i+1] // = g.Next(starts[i]), already computed
		}
		return g.Next(starts[i])
	}
	var total int64
	if !byLocation {
		out := slices.Grow(sc.sums[:0], len(starts))[:len(starts)]
		sc.sums = out
		for i, s := range starts {
			out[i] = bucketSum{start: s, end: end(i)}
		}
		for _, d := range deltas {
			if d.At.Before(from) || !d.At.Before(to) {
				continue
			}
			out[index(d.At)].bytes += d.Bytes
			total += d.Bytes
		}
		return out, total
	}
	type key struct {
		i   int
		loc string
	}
	sums := map[key]int64{}
	for _, d := range deltas {
		if d.At.Before(from) || !d.At.Before(to) {
			continue
		}
		sums[key{i: index(d.At), loc: d.Location}] += d.Bytes
	}
	keys := make([]key, 0, len(sums))
	for k, v := range sums {
		if v != 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(a, b int) bool {
		if keys[a].i != keys[b].i {
			return keys[a].i < keys[b].i
		}
		return keys[a].loc < keys[b].loc
	})
	out := make([]bucketSum, len(keys))
	for j, k := range keys {
		v := sums[k]
		total += v
		out[j] = bucketSum{start: starts[k.i], end: end(k.i), bytes: v, loc: k.loc}
	}
	return out, total
}

// Cursor is the position after the last entry of an events page.
type Cursor struct {
	At int64 // UNIX nanoseconds
	ID string
}

// ErrBadCursor is returned for a cursor this server did not make.
var ErrBadCursor = errors.New("invalid cursor")

const cursorPrefix = "v1:"

// Encode returns the opaque cursor string.
func (c Cursor) Encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(c.At, 10) + ":" + c.ID))
}

// DecodeCursor parses a string made by Cursor.Encode.
func DecodeCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, ErrBadCursor
	}
	rest, ok := strings.CutPrefix(string(b), cursorPrefix)
	if !ok {
		return Cursor{}, ErrBadCursor
	}
	at, id, ok := strings.Cut(rest, ":")
	if !ok || id == "" || len(id) > 128 {
		return Cursor{}, ErrBadCursor
	}
	n, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return Cursor{}, ErrBadCursor
	}
	return Cursor{At: n, ID: id}, nil
}

// TimelineKinds are the event kinds the timeline lists.
var TimelineKinds = []string{"status", "imei", "threshold", "lifecycle"}

// ParseKinds parses the kind filter: a comma list of timeline kinds
// (empty means all). Duplicates are folded; the result is sorted.
func ParseKinds(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return TimelineKinds, nil
	}
	seen := map[string]bool{}
	var out []string
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		ok := false
		for _, v := range TimelineKinds {
			if k == v {
				ok = true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown kind %q (want %s)", k, strings.Join(TimelineKinds, ", "))
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Limits of the events page size.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// ParseLimit parses the page size: 1..MaxLimit, DefaultLimit when empty.
func ParseLimit(s string) (int, error) {
	if s == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, fmt.Errorf("limit must be an integer from 1 to %d", MaxLimit)
	}
	return n, nil
}

// ValidICCID reports whether s looks like an ICCID: digits, at most 22
// (the parsers store nothing else).
func ValidICCID(s string) bool {
	if s == "" || len(s) > 22 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
