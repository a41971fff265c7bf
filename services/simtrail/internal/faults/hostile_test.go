package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/services/ingest/providers"
)

// rssBoundKB is the generous bound on the ingest process's peak RSS while it
// is attacked: bodies are refused at 1 MiB and headers at 64 KiB, so the
// floods below cost little; buffering every 2 MiB body whole would not fit.
const rssBoundKB = 384 << 10

// TestHostileClients attacks a `simtrail ingest` process with slowloris
// connections, oversized headers, oversized (declared and chunked) bodies,
// deeply nested, huge and invalid-UTF-8 JSON, while a well-behaved client
// keeps posting webhooks. Every hostile request gets its documented answer,
// the well-behaved client's requests all succeed, and the process's RSS
// stays bounded.
func TestHostileClients(t *testing.T) {
	needFaults(t)
	nodes := newNATSCluster(t, 1, natsOpts{})
	startAll(t, nodes)
	ing := startIngest(t, nodes[0].url())
	c := newClient(64)
	waitReady(t, c, ing.base, 60*time.Second)
	host := strings.TrimPrefix(ing.base, "http://")

	// RSS sampler.
	var peakRSS atomic.Int64
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, _ := rssKB(ing.pid()); rss > peakRSS.Load() {
				peakRSS.Store(rss)
			}
			select {
			case <-stopSample:
				return
			case <-tick.C:
			}
		}
	}()

	// The well-behaved client: one webhook at a time, all the time.
	good := newClient(2)
	goodBodies := uniqueBodies(100000, 10, "good")
	var goodSent, goodOK int
	var goodLat []time.Duration
	goodStop := make(chan struct{})
	goodDone := make(chan struct{})
	measureGood := func(stop <-chan struct{}, done chan<- struct{}) {
		defer close(done)
		for !closed(stop) && goodSent < len(goodBodies) {
			start := time.Now()
			st, err := postRoamify(good, ing.base, goodBodies[goodSent])
			goodSent++
			if err == nil && st == http.StatusOK {
				goodOK++
				goodLat = append(goodLat, time.Since(start))
			} else {
				t.Errorf("well-behaved request %d: %d %v", goodSent, st, err)
			}
			time.Sleep(10 * time.Millisecond) // its own pace: ~100 webhooks/s
		}
	}
	// Baseline first, without attack.
	baseStop, baseDone := make(chan struct{}), make(chan struct{})
	go measureGood(baseStop, baseDone)
	time.Sleep(2 * time.Second) // measuring window, not synchronisation
	close(baseStop)
	<-baseDone
	baseP99 := percentile(goodLat, 0.99)
	baseN, baseSent := goodOK, goodSent
	goodLat = nil
	go measureGood(goodStop, goodDone)

	var attacks sync.WaitGroup
	attack := func(f func()) {
		attacks.Add(1)
		go func() { defer attacks.Done(); f() }()
	}
	counts := map[string]*atomic.Int64{}
	var countsMu sync.Mutex
	count := func(k string) {
		countsMu.Lock()
		if counts[k] == nil {
			counts[k] = &atomic.Int64{}
		}
		n := counts[k]
		countsMu.Unlock()
		n.Add(1)
	}

	// 1. Slowloris: many connections sending their headers byte by byte.
	slow := pick(200, 800)
	var cut atomic.Int64
	var maxHeld atomic.Int64
	for range slow {
		attack(func() {
			conn, err := net.Dial("tcp", host)
			if err != nil {
				count("slowloris dial error")
				return
			}
			defer conn.Close()
			opened := time.Now()
			if _, err := io.WriteString(conn, "POST /webhooks/roamify HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
				return
			}
			// Bounded: the server must cut us within ReadHeaderTimeout
			// (5 s); give up after 20 s and count it as not cut.
			for time.Since(opened) < 20*time.Second {
				if _, err := conn.Write([]byte("a")); err != nil {
					cut.Add(1)
					held := time.Since(opened).Milliseconds()
					for {
						m := maxHeld.Load()
						if held <= m || maxHeld.CompareAndSwap(m, held) {
							break
						}
					}
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			count("slowloris not cut")
		})
	}

	// 2. Oversized headers (> 64 KiB): 431.
	for range pick(20, 100) {
		attack(func() {
			req, _ := http.NewRequest(http.MethodPost, ing.base+"/webhooks/roamify", strings.NewReader("{}"))
			req.Header.Set("X-Big", strings.Repeat("h", 100<<10))
			resp, err := c.Do(req)
			if err != nil {
				count("big header: transport error")
				return
			}
			resp.Body.Close()
			count(fmt.Sprintf("big header: %d", resp.StatusCode))
		})
	}

	// 3. Huge bodies (2 MiB), declared and chunked: 413 before or while
	// reading, never buffered whole.
	huge := bytes.Repeat([]byte("x"), 2<<20)
	for i := range pick(32, 128) {
		attack(func() {
			var body io.Reader = bytes.NewReader(huge)
			req, _ := http.NewRequest(http.MethodPost, ing.base+"/webhooks/roamify", body)
			kind := "declared"
			if i%2 == 1 {
				kind = "chunked"
				req.ContentLength = -1 // Transfer-Encoding: chunked
				req.Body = io.NopCloser(bytes.NewReader(huge))
			}
			req.Header.Set("X-Roamify-Signature", providers.SignRoamify(roamifySecret, huge))
			resp, err := c.Do(req)
			if err != nil {
				count("huge " + kind + ": transport error")
				return
			}
			resp.Body.Close()
			count(fmt.Sprintf("huge %s: %d", kind, resp.StatusCode))
		})
	}

	// 4. Hostile JSON within 1 MiB, signed (so it is authenticated and
	// reaches the parser): deep nesting beyond encoding/json's limit,
	// deep-but-legal nesting, a huge array, a usage_list of 10k rows, and
	// invalid UTF-8 in a string.
	hostile := map[string][]byte{
		"nested 500k":       []byte(strings.Repeat("[", 500000) + strings.Repeat("]", 500000)),
		"nested 9k objects": []byte(strings.Repeat(`{"a":`, 9000) + "1" + strings.Repeat("}", 9000)),
		"huge array":        []byte("[" + strings.TrimSuffix(strings.Repeat(`{"k":1},`, 120000), ",") + "]"),
		"usage_list 10k":    bigUsageList(10000),
		"invalid utf-8":     []byte("{\"event_category\":\"esim\",\"event_type\":\"usage\",\"data\":{\"iccid\":\"8910300000007999999\",\"location\":\"\xff\xfe\xc0\",\"timestamp\":1767225600}}"),
	}
	answers := map[string]int{}
	var answersMu sync.Mutex
	for name, b := range hostile {
		if len(b) > 1<<20 {
			t.Fatalf("%s is %d bytes, over the limit", name, len(b))
		}
		for range pick(4, 16) {
			attack(func() {
				st, err := postRoamify(c, ing.base, b)
				answersMu.Lock()
				defer answersMu.Unlock()
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				answers[name] = st
				count(fmt.Sprintf("%s: %d", name, st))
			})
		}
	}

	attacks.Wait()
	close(goodStop)
	<-goodDone
	close(stopSample)
	<-sampled
	_, hwm := rssKB(ing.pid())
	if ing.exited() {
		t.Fatalf("ingest died: %v", ing.err)
	}

	// The documented answers.
	want := map[string]int{"big header": 431, "huge declared": 413, "huge chunked": 413,
		"nested 500k": 400, "nested 9k objects": 200, "huge array": 200, "usage_list 10k": 200, "invalid utf-8": 200}
	var summary []string
	countsMu.Lock()
	for k, v := range counts {
		summary = append(summary, fmt.Sprintf("%s ×%d", k, v.Load()))
		name, st, _ := strings.Cut(k, ": ")
		if w, ok := want[name]; ok && st != fmt.Sprint(w) {
			t.Errorf("%s answered %s ×%d, want %d", name, st, v.Load(), w)
		}
		if strings.Contains(k, "not cut") || strings.Contains(k, "dial error") {
			t.Errorf("%s ×%d", k, v.Load())
		}
	}
	countsMu.Unlock()
	t.Logf("hostile answers: %s", strings.Join(summary, ", "))
	if cut.Load() != int64(slow) {
		t.Errorf("slowloris: %d of %d connections cut by the server", cut.Load(), slow)
	}
	if ms := maxHeld.Load(); ms > 15000 {
		t.Errorf("slowloris: a connection was held %d ms (ReadHeaderTimeout is 5 s)", ms)
	}
	// The invalid UTF-8 body is stored byte for byte.
	checkRawStored(t, nodes[0].url(), hostile["invalid utf-8"])

	p99 := percentile(goodLat, 0.99)
	t.Logf("well-behaved client: %d/%d ok under attack, p99 %s (baseline %d ok, p99 %s); ingest peak RSS %d KiB sampled, VmHWM %d KiB",
		goodOK-baseN, goodSent-baseSent, p99, baseN, baseP99, peakRSS.Load(), hwm)
	if goodOK != goodSent {
		t.Errorf("well-behaved client: %d of %d succeeded", goodOK, goodSent)
	}
	if hwm > rssBoundKB {
		t.Errorf("ingest peak RSS %d KiB over the bound %d KiB", hwm, rssBoundKB)
	}
	results.add(row{Scenario: fmt.Sprintf("hostile HTTP: %d slowloris conns, 431/413 floods, hostile JSON; well-behaved client", slow),
		Sent: goodSent - baseSent, OK: goodOK - baseN, Failed: goodSent - goodOK, Stored: goodOK - baseN,
		Note: fmt.Sprintf("well-behaved p99 %s under attack (baseline %s); all %d slowloris conns cut after ≤ %.1f s; ingest VmHWM %d MiB (bound %d MiB)",
			p99.Round(time.Millisecond), baseP99.Round(time.Millisecond), cut.Load(), float64(maxHeld.Load())/1000, hwm>>10, rssBoundKB>>10)})
}

// bigUsageList is a Roamify usage webhook with n daily rows.
func bigUsageList(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"event_category":"esim","event_type":"usage","data":{"timestamp":1767225600,"iccid":"8910300000007999998","data_units":"MB","usage_data":{"isUnlimited":false,"allowed_data":10240,"remaining_data":10000},"usage_list":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"date":"2026-01-%02d","data_used":%d,"location":"L%d"}`, 1+i%28, i%100, i)
	}
	b.WriteString(`]}}`)
	return b.Bytes()
}

// checkRawStored finds the event of body in the stream and compares its
// raw bytes.
func checkRawStored(t *testing.T, url string, body []byte) {
	t.Helper()
	js, done := connectJS(t, url)
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"simtrail.events.other.roamify.>", "simtrail.events.usage.roamify.8910300000007999999"}})
	if err != nil {
		t.Fatal(err)
	}
	id := eventID(body)
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if m.Headers().Get(events.HeaderMsgID) != id {
				continue
			}
			ev, err := events.Decode(m.Data())
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !bytes.Equal(ev.GetRawBody(), body) {
				t.Fatalf("invalid UTF-8 body not stored byte for byte")
			}
			return
		}
		if n == 0 {
			t.Fatalf("invalid UTF-8 body (id %s) not found in the stream", id)
		}
	}
}
