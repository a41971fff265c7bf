package ingest

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The answers are rendered by hand on the hot path; they must stay byte for
// byte what encoding/json makes of the documented shapes.
func TestAnswerBodiesMatchEncodingJSON(t *testing.T) {
	enc := func(v any) []byte {
		var b bytes.Buffer
		if err := json.NewEncoder(&b).Encode(v); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	if want := enc(roamifyAck{Code: 200, Status: "success"}); !bytes.Equal(roamifyAckBody, want) {
		t.Errorf("roamify ack %q, want %q", roamifyAckBody, want)
	}
	id := "3f2a9c0e5b7d41e8a6c4f0b2d8e1a7c53f2a9c0e5b7d41e8a6c4f0b2d8e1a7c5"
	for _, pos := range []uint64{0, 1, 18446744073709551615} {
		want := enc(accepted{Status: "accepted", Events: []acceptedEvent{{ID: id, Position: pos}}})
		if got := acceptedBody(id, pos); !bytes.Equal(got, want) {
			t.Errorf("accepted body %q, want %q", got, want)
		}
	}
}
