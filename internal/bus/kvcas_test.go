package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
)

// casOp is one step of a KV scenario; rev < 0 in an update means "the
// revision the previous step returned".
type casOp struct {
	op      string // create, update, delete, purge
	key     string
	rev     int64
	wantErr error // nil: must succeed
}

// TestCASMatchesKeyValue runs the same compare-and-set scenarios through
// nats.go's KeyValue and through Bus.CAS, on two buckets of one embedded
// server, and wants the same outcome from both at every step: the
// revision (the buckets go through the same writes) and the error, by the
// sentinels the ledger tells a conflict by.
func TestCASMatchesKeyValue(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		ops  []casOp
	}{
		{"create new", []casOp{{op: "create", key: "a"}}},
		{"create existing", []casOp{{op: "create", key: "a"}, {op: "create", key: "a", wantErr: jetstream.ErrKeyExists}}},
		{"create over delete marker", []casOp{{op: "create", key: "a"}, {op: "delete", key: "a"}, {op: "create", key: "a"}, {op: "create", key: "a", wantErr: jetstream.ErrKeyExists}}},
		{"create over purge marker", []casOp{{op: "create", key: "a.b"}, {op: "purge", key: "a.b"}, {op: "create", key: "a.b"}}},
		{"update at revision", []casOp{{op: "create", key: "a"}, {op: "update", key: "a", rev: -1}, {op: "update", key: "a", rev: -1}}},
		{"update behind", []casOp{{op: "create", key: "a"}, {op: "update", key: "a", rev: -1}, {op: "update", key: "a", rev: 1, wantErr: jetstream.ErrKeyRevisionMismatch}}},
		{"update missing", []casOp{{op: "update", key: "a", rev: 3, wantErr: jetstream.ErrKeyRevisionMismatch}}},
		{"update deleted at marker", []casOp{{op: "create", key: "a"}, {op: "delete", key: "a"}, {op: "update", key: "a", rev: 2}}},
		{"invalid key", []casOp{{op: "create", key: "a b", wantErr: jetstream.ErrInvalidKey}, {op: "update", key: "a..b", rev: 1, wantErr: jetstream.ErrInvalidKey}, {op: "create", key: ".a", wantErr: jetstream.ErrInvalidKey}}},
	}
	b := bustest.New(t)
	_, js := bustest.Client(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kvs := map[string]jetstream.KeyValue{}
			for _, which := range []string{"natsgo", "cas"} {
				kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: which + string(rune('a'+i)), History: 1})
				if err != nil {
					t.Fatal(err)
				}
				kvs[which] = kv
			}
			kvs["cas"] = b.CAS(kvs["cas"])
			last := map[string]uint64{}
			for n, op := range tc.ops {
				var got [2]uint64
				for w, which := range []string{"natsgo", "cas"} {
					kv := kvs[which]
					rev := uint64(op.rev)
					if op.rev < 0 {
						rev = last[which]
					}
					var err error
					switch op.op {
					case "create":
						got[w], err = kv.Create(ctx, op.key, []byte("v"))
					case "update":
						got[w], err = kv.Update(ctx, op.key, []byte("v"), rev)
					case "delete":
						err = kv.Delete(ctx, op.key)
					case "purge":
						err = kv.Purge(ctx, op.key)
					}
					switch {
					case op.wantErr == nil && err != nil:
						t.Fatalf("%s: step %d (%s %s): %v", which, n, op.op, op.key, err)
					case op.wantErr != nil && !errors.Is(err, op.wantErr):
						t.Fatalf("%s: step %d (%s %s): err = %v, want %v", which, n, op.op, op.key, err, op.wantErr)
					}
					if got[w] != 0 {
						last[which] = got[w]
					}
				}
				if got[0] != got[1] {
					t.Errorf("step %d (%s %s): revision %d from nats.go, %d from CAS", n, op.op, op.key, got[0], got[1])
				}
			}
			e, err := kvs["cas"].Get(ctx, tc.ops[0].key)
			if err == nil && string(e.Value()) != "v" {
				t.Errorf("value %q, want v", e.Value())
			}
		})
	}
}

// TestCASUnavailableIsNoConflict: a bucket whose stream is gone fails
// with an error that is not a conflict, so that the ledger hands the
// message back rather than look again at once.
func TestCASUnavailableIsNoConflict(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	_, js := bustest.Client(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "gone", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	cas := b.CAS(kv)
	if err := js.DeleteKeyValue(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	for _, put := range []func() error{
		func() error { _, err := cas.Create(ctx, "k", []byte("v")); return err },
		func() error { _, err := cas.Update(ctx, "k", []byte("v"), 1); return err },
	} {
		err := put()
		if err == nil || errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			t.Errorf("err = %v, want a failure that is not a conflict", err)
		}
		if !errors.Is(err, jetstream.ErrNoStreamResponse) {
			t.Errorf("err = %v, want %v", err, jetstream.ErrNoStreamResponse)
		}
	}
}

// TestCASConflictOnReplicatedBucket: on an R3 bucket the stream's raft
// group decides the compare-and-set (and may report a lost one as 10164
// rather than 10071); CAS reports it as the conflict sentinels.
func TestCASConflictOnReplicatedBucket(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	t.Parallel()
	c := bustest.NewCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, config.NATS{URL: c.URLs(), Replicas: 3, ConnectTimeout: config.Duration(5 * time.Second)}, t.Name(), bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var kv jetstream.KeyValue
	if err := bus.Retry(ctx, bustest.Logger(t), "bucket", func(ctx context.Context) error {
		kv, err = b.KV(ctx, event.BucketDelivered)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	cas := b.CAS(kv)
	var rev uint64
	bustest.Eventually(t, 30*time.Second, func() bool {
		rev, err = cas.Create(ctx, "k", []byte("v1"))
		return err == nil
	}, "create on the R3 bucket")
	if _, err := cas.Create(ctx, "k", []byte("v2")); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Errorf("second create: err = %v, want %v", err, jetstream.ErrKeyExists)
	}
	if _, err := cas.Update(ctx, "k", []byte("v2"), rev+1); !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		t.Errorf("update behind: err = %v, want %v", err, jetstream.ErrKeyRevisionMismatch)
	}
	if n, err := cas.Update(ctx, "k", []byte("v2"), rev); err != nil || n <= rev {
		t.Errorf("update at revision: %d, %v", n, err)
	}

	// Writers racing on one key: while the first write is proposed and
	// not yet applied, the stream leader refuses the others with 10164
	// rather than 10071. Each must still lose as a conflict, one wins.
	const keys, writers = 20, 8
	for k := range keys {
		key := fmt.Sprintf("race%d", k)
		errs := make(chan error, writers)
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				_, err := cas.Create(ctx, key, []byte("v"))
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		won := 0
		for err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, jetstream.ErrKeyExists):
				t.Errorf("%s: racing create: err = %v, want nil or %v", key, err, jetstream.ErrKeyExists)
			}
		}
		if won != 1 {
			t.Errorf("%s: %d racing creates won, want 1", key, won)
		}
	}
}
