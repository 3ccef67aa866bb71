package audit

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/ids"
	"github.com/pms/pms/pkg/platform/outbox"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// CheckpointEventType is the event-type header of a signed checkpoint on the audit topic.
const CheckpointEventType = "AUDIT_CHECKPOINT"

// Checkpoint is a service's audit-chain head, signed with its checkpoint key.
type Checkpoint struct {
	Service   string
	Seq       int64
	Hash      string
	At        time.Time
	KeyID     string
	Signature []byte
}

// payload is the text a checkpoint's signature covers (events.proto, AuditCheckpoint): the
// service is in it, so one service's checkpoint cannot stand for another's.
func (c Checkpoint) payload() []byte {
	return []byte("pms-audit-checkpoint/v1\n" + c.Service + "\n" + strconv.FormatInt(c.Seq, 10) + "\n" + c.Hash + "\n" +
		c.At.UTC().Format(time.RFC3339Nano))
}

// Verify checks the signature with the key its KeyID names among keys.
func (c Checkpoint) Verify(keys map[string]ed25519.PublicKey) error {
	pub, ok := keys[c.KeyID]
	if !ok {
		return fmt.Errorf("signed by unknown key %q", c.KeyID)
	}
	if !ed25519.Verify(pub, c.payload(), c.Signature) {
		return fmt.Errorf("signature does not verify with key %q", c.KeyID)
	}
	return nil
}

// SignCheckpoint returns the checkpoint of service's head (seq, hash) at at, signed by keys.
func SignCheckpoint(keys *CheckpointKeys, service string, seq int64, hash string, at time.Time) (Checkpoint, error) {
	c := Checkpoint{Service: service, Seq: seq, Hash: hash, At: at.UTC()}
	kid, sig, err := keys.Sign(c.payload())
	if err != nil {
		return Checkpoint{}, err
	}
	c.KeyID, c.Signature = kid, sig
	return c, nil
}

// CheckpointHook returns the writer's Options.Checkpoint: it signs the chain head with keys and
// writes the AuditCheckpoint to the audit topic through ob, in the batch's own transaction, so
// a checkpoint is published if and only if the head it names was committed.
func CheckpointHook(ob *outbox.Outbox, service string, keys *CheckpointKeys) func(ctx context.Context, tx db.Execer, seq int64, hash string) error {
	return func(ctx context.Context, tx db.Execer, seq int64, hash string) error {
		c, err := SignCheckpoint(keys, service, seq, hash, time.Now())
		if err != nil {
			return err
		}
		id := ids.Ordered()
		b, err := proto.Marshal(&eventsv1.AuditCheckpoint{EventId: id, Service: service, Seq: seq, Hash: hash,
			At: timestamppb.New(c.At), KeyId: c.KeyID, Signature: c.Signature})
		if err != nil {
			return err
		}
		return ob.Add(ctx, tx, outbox.Message{Topic: Topic, Key: "checkpoint/" + service, Value: b,
			Headers: outbox.EventHeaders(CheckpointEventType, id, "")})
	}
}

// Published is what the audit topic holds about one service's log: the hash of every entry
// published (AuditEvent) and its signed checkpoints.
type Published struct {
	Entries     map[int64]string
	Checkpoints []Checkpoint
}

// Add folds one message of the audit topic into p when it is about service: an AuditEvent
// (any event type but CheckpointEventType) or an AuditCheckpoint. A value that is neither is
// an error (the caller reports it; it proves nothing about the log).
func (p *Published) Add(service, eventType string, value []byte) error {
	if p.Entries == nil {
		p.Entries = map[int64]string{}
	}
	if eventType == CheckpointEventType {
		var m eventsv1.AuditCheckpoint
		if err := proto.Unmarshal(value, &m); err != nil {
			return err
		}
		if m.GetService() == service {
			p.Checkpoints = append(p.Checkpoints, Checkpoint{Service: m.GetService(), Seq: m.GetSeq(), Hash: m.GetHash(),
				At: m.GetAt().AsTime(), KeyID: m.GetKeyId(), Signature: m.GetSignature()})
		}
		return nil
	}
	var m eventsv1.AuditEvent
	if err := proto.Unmarshal(value, &m); err != nil {
		return err
	}
	if m.GetService() == service && m.GetSeq() > 0 {
		p.Entries[m.GetSeq()] = m.GetHash()
	}
	return nil
}

// VerifyAgainst is Verify for service's log that also compares it with what the audit topic
// holds (pub): every row must have the hash its published AuditEvent carries, every signed
// checkpoint must verify with keys (the service's checkpoint public keys) and name a row with
// its hash, and no checkpoint may lie beyond the table's end. A rewrite that recomputes the
// whole chain passes Verify but not this: the verdict names the first seq that differs from
// what was published. Entries not (yet) published are checked by the chain alone.
func VerifyAgainst(ctx context.Context, d *db.DB, table, service string, pub Published, keys map[string]ed25519.PublicKey) (Report, error) {
	cps := map[int64]Checkpoint{}
	var invalid []Checkpoint
	for _, c := range pub.Checkpoints {
		if err := c.Verify(keys); err != nil {
			invalid = append(invalid, c)
			continue
		}
		cps[c.Seq] = c
	}
	check := func(e *Entry) string {
		if h, ok := pub.Entries[e.Seq]; ok && h != e.Hash {
			return "the row differs from the entry published on the audit topic (hash)"
		}
		if c, ok := cps[e.Seq]; ok && c.Hash != e.Hash {
			return "the row differs from the signed checkpoint of seq " + strconv.FormatInt(c.Seq, 10)
		}
		return ""
	}
	rep, err := walk(ctx, d, table, check)
	if err != nil {
		return rep, err
	}
	rep.Service, rep.AgainstTopic = service, true
	rep.TopicEntries, rep.Checkpoints = int64(len(pub.Entries)), int64(len(cps))
	if !rep.OK {
		return rep, nil
	}
	if len(invalid) > 0 {
		sort.Slice(invalid, func(i, j int) bool { return invalid[i].Seq < invalid[j].Seq })
		c := invalid[0]
		err := c.Verify(keys)
		rep.OK, rep.FirstBadSeq, rep.Problem = false, c.Seq, fmt.Sprintf("the checkpoint of seq %d on the audit topic is not valid: %v", c.Seq, err)
		return rep, nil
	}
	top := int64(0)
	for seq := range cps {
		top = max(top, seq)
	}
	for seq := range pub.Entries {
		top = max(top, seq)
	}
	if top > rep.LastSeq {
		rep.OK, rep.FirstBadSeq = false, rep.LastSeq+1
		rep.Problem = fmt.Sprintf("seq %d is missing: the audit topic names entries up to seq %d, the table ends at seq %d", rep.LastSeq+1, top, rep.LastSeq)
	}
	return rep, nil
}

// VerifyTable is Verify with its verdict naming service, for the admin endpoint and the CLI.
func VerifyTable(ctx context.Context, d *db.DB, table, service string) (Report, error) {
	rep, err := Verify(ctx, d, table)
	rep.Service = service
	return rep, db.Classify(err)
}
