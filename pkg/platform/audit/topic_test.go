package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
)

// TestVerifyService: the verdict a service's GET /audit/verify answers — the chain alone
// without againstTopic or without a TopicCheck; against what the topic reader returns with
// both (a recomputed chain named at its first rewritten seq); 503 unavailable when the topic
// cannot be read in time or at all, and canceled when the caller went away.
func TestVerifyService(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "keys.json")
		keys, _, err := OpenCheckpointKeys(path)
		if err != nil {
			t.Fatal(err)
		}
		var p published
		w := newWriter(t, d, p.hooks(t, keys, "patient"))
		for i := 1; i <= 10; i++ {
			if _, err := w.Write(ctx, sample(i)); err != nil {
				t.Fatal(err)
			}
		}
		p.mu.Lock()
		pub := p.pub
		p.mu.Unlock()
		tc := &TopicCheck{
			Read: func(context.Context) (map[string]*Published, error) {
				return map[string]*Published{"patient": &pub}, nil
			},
			Keys: func() (map[string]ed25519.PublicKey, error) { return CheckpointPublicKeys(path) },
		}
		if rep, err := VerifyService(ctx, d, "", "patient", true, tc); err != nil || !rep.OK || !rep.AgainstTopic || rep.TopicEntries == 0 {
			t.Fatalf("against the topic: %+v %v", rep, err)
		}
		rewrite(t, d, 4)
		if rep, err := VerifyService(ctx, d, "", "patient", false, tc); err != nil || !rep.OK || rep.AgainstTopic {
			t.Fatalf("the recomputed chain alone: %+v %v; want ok", rep, err)
		}
		if rep, err := VerifyService(ctx, d, "", "patient", true, nil); err != nil || !rep.OK || rep.AgainstTopic {
			t.Fatalf("without a TopicCheck: %+v %v; want the chain alone", rep, err)
		}
		if rep, err := VerifyService(ctx, d, "", "patient", true, tc); err != nil || rep.OK || rep.FirstBadSeq != 4 {
			t.Fatalf("the recomputed chain against the topic: %+v %v; want seq 4", rep, err)
		}

		// A topic that does not answer in time, or at all: 503, no verdict.
		slow := &TopicCheck{Timeout: 50 * time.Millisecond, Keys: tc.Keys,
			Read: func(ctx context.Context) (map[string]*Published, error) { <-ctx.Done(); return nil, ctx.Err() }}
		if _, err := VerifyService(ctx, d, "", "patient", true, slow); errs.KindOf(err) != errs.Unavailable {
			t.Fatalf("slow topic: %v; want unavailable", err)
		}
		broken := &TopicCheck{Keys: tc.Keys, Read: func(context.Context) (map[string]*Published, error) { return nil, errors.New("no broker") }}
		if _, err := VerifyService(ctx, d, "", "patient", true, broken); errs.KindOf(err) != errs.Unavailable {
			t.Fatalf("unreachable topic: %v; want unavailable", err)
		}
		gone, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := VerifyService(gone, d, "", "patient", true, slow); errs.KindOf(err) != errs.Canceled {
			t.Fatalf("caller gone: %v; want canceled", err)
		}
		// One read of the topic at a time per service: while one read holds the slot, another
		// verification waits for it, and past its deadline answers 503 without reading.
		var reads atomic.Int32
		hold := make(chan struct{})
		one := &TopicCheck{Timeout: 30 * time.Second, Keys: tc.Keys, Read: func(ctx context.Context) (map[string]*Published, error) {
			if reads.Add(1) == 1 {
				<-hold
			}
			return map[string]*Published{"patient": &pub}, nil
		}}
		first := make(chan error, 1)
		go func() {
			_, err := VerifyService(context.Background(), d, "", "patient", true, one)
			first <- err
		}()
		for deadline := time.Now().Add(10 * time.Second); reads.Load() == 0; {
			if time.Now().After(deadline) {
				t.Fatal("the first read never started")
			}
			runtime.Gosched()
		}
		short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err = VerifyService(short, d, "", "patient", true, one)
		cancelShort()
		if errs.KindOf(err) != errs.Unavailable || reads.Load() != 1 {
			t.Fatalf("a second verification during the first read: %v, %d reads; want unavailable without a read", err, reads.Load())
		}
		close(hold)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyService(ctx, d, "", "patient", true, one); err != nil || reads.Load() != 2 {
			t.Fatalf("after the first read: %v, %d reads", err, reads.Load())
		}
		if !AgainstTopic(WithAgainstTopic(ctx, true)) || AgainstTopic(ctx) {
			t.Fatal("WithAgainstTopic / AgainstTopic")
		}
	})
}
