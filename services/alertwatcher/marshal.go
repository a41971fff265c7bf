package alertwatcher

import (
	"strconv"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/simtrail/simtrail/pkg/events"
)

// unmarshaler turns a stored simtrail message into a watermill message. It
// never fails: a failure here would leave the message unacknowledged and
// redelivered forever; a bad payload is the handler's to reject, so that it
// reaches the poison queue.
//
// The watermill UUID is the Nats-Msg-Id (the deterministic alert id); every
// header becomes metadata (first value), plus MetaSubject and MetaStreamSeq.
type unmarshaler struct{}

func (unmarshaler) Unmarshal(m *nats.Msg) (*message.Message, error) {
	id := m.Header.Get(events.HeaderMsgID)
	if id == "" {
		id = watermill.NewUUID()
	}
	wm := message.NewMessage(id, m.Data)
	for k, v := range m.Header {
		if len(v) > 0 {
			wm.Metadata.Set(k, v[0])
		}
	}
	wm.Metadata.Set(MetaSubject, m.Subject)
	if md, err := m.Metadata(); err == nil {
		wm.Metadata.Set(MetaStreamSeq, strconv.FormatUint(md.Sequence.Stream, 10))
	}
	return wm, nil
}

// deadLetterMarshaler writes a poisoned message back to NATS: payload as
// received, metadata as headers (the original CloudEvents headers, the
// original subject and sequence, and the PoisonQueue's reason_poisoned,
// topic_poisoned, handler_poisoned, subscriber_poisoned).
//
// The dead-letter copy is stored in the same SIMTRAIL stream, whose
// duplicate window is keyed by Nats-Msg-Id: keeping the alert's id would
// make JetStream drop the copy as a duplicate of the alert. It gets its own
// deterministic id instead, so a copy republished after a crash is still
// de-duplicated.
type deadLetterMarshaler struct{ durable string }

func (d deadLetterMarshaler) Marshal(topic string, msg *message.Message) (*nats.Msg, error) {
	out := nats.NewMsg(topic)
	out.Data = msg.Payload
	for k, v := range msg.Metadata {
		switch k {
		case events.HeaderMsgID, nats.ExpectedStreamHdr, nats.ExpectedLastSeqHdr, nats.ExpectedLastSubjSeqHdr, nats.ExpectedLastMsgIdHdr:
			continue
		}
		out.Header.Set(k, v)
	}
	out.Header.Set(wmnats.WatermillUUIDHdr, msg.UUID)
	out.Header.Set(events.HeaderMsgID, "deadletter:"+d.durable+":"+msg.UUID)
	return out, nil
}
