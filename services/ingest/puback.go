package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// errBadAck is a JetStream reply that is neither an ack nor an API error.
var errBadAck = errors.New("invalid JetStream publish ack")

// parseAck decodes JetStream's reply to a publish into the stream
// sequence and whether the server dropped the message as a duplicate. The
// server writes its acks from a fixed template ({"stream":"S","seq":N}
// with ,"duplicate": true before the brace for a duplicate); those are
// read without encoding/json, whose reflection was a tenth of the publish
// cost. Any other reply (an error, a domain, a new field) goes through
// encoding/json with jetstream's own types, so nothing is misread; a test
// holds the two equal on every input.
func parseAck(data []byte, stream string) (seq uint64, dup bool, err error) {
	if seq, dup, ok := fastAck(data, stream); ok {
		return seq, dup, nil
	}
	return slowAck(data)
}

func fastAck(data []byte, stream string) (seq uint64, dup bool, ok bool) {
	const pre, mid = `{"stream":"`, `","seq":`
	if !bytes.HasPrefix(data, []byte(pre)) {
		return 0, false, false
	}
	rest := data[len(pre):]
	if !bytes.HasPrefix(rest, []byte(stream)) || !bytes.HasPrefix(rest[len(stream):], []byte(mid)) {
		return 0, false, false
	}
	rest = rest[len(stream)+len(mid):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	// No leading zeros or sign: exactly what strconv.FormatUint writes.
	if n == 0 || n > 1 && rest[0] == '0' {
		return 0, false, false
	}
	seq, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	if err != nil {
		return 0, false, false
	}
	switch string(rest[n:]) {
	case `}`:
		return seq, false, true
	case `,"duplicate": true}`, `,"duplicate":true}`:
		return seq, true, true
	}
	return 0, false, false
}

// slowAck is jetstream's own decoding of a publish reply.
func slowAck(data []byte) (uint64, bool, error) {
	var resp struct {
		Error *jetstream.APIError `json:"error,omitempty"`
		*jetstream.PubAck
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return 0, false, errBadAck
	}
	if resp.Error != nil {
		return 0, false, fmt.Errorf("nats: %w", resp.Error)
	}
	if resp.PubAck == nil || resp.Stream == "" {
		return 0, false, errBadAck
	}
	return resp.Sequence, resp.Duplicate, nil
}
