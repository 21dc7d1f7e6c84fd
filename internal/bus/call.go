package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// A call is a request over core NATS answered by a stream of replies: a
// long job (a replay) run by whichever of a queue group of servers takes
// it, reporting as it goes. Beside the handler's own replies the server
// sends a heartbeat every CallHeartbeat, so that the caller can tell a
// slow job from a server that is gone. Every reply names, as its reply
// subject, the call's control inbox: a message there (the caller gave up
// or was interrupted) cancels the handler.

// CallHeartbeat is how often a server tells its caller that the handler
// still runs.
const CallHeartbeat = 2 * time.Second

const headerHeartbeat = "Feedmon-Heartbeat"

// ErrNoResponders: no server listens on the subject.
var ErrNoResponders = errors.New("bus: no one serves this subject")

// ErrCallSilent: the server did not answer in time, or stopped answering.
var ErrCallSilent = errors.New("bus: no answer")

// CallOptions bounds how long Call waits.
type CallOptions struct {
	// FirstReply is how long to wait for the first reply (default 5s).
	FirstReply time.Duration
	// Idle is how long to wait for any later reply or heartbeat (default
	// five heartbeats).
	Idle time.Duration
}

// Call sends data on subject and hands each reply to fn until fn reports
// done or fails. It fails with ErrNoResponders when no one serves subject
// and with ErrCallSilent when the server does not answer in time. When ctx
// ends or Call gives up, it tells the server's handler to stop.
func (b *Bus) Call(ctx context.Context, subject string, data []byte, o CallOptions, fn func(reply []byte) (done bool, err error)) error {
	if o.FirstReply <= 0 {
		o.FirstReply = 5 * time.Second
	}
	if o.Idle <= 0 {
		o.Idle = 5 * CallHeartbeat
	}
	inbox := b.nc.NewInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("bus: call %s: %w", subject, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	// Replies may come fast and in numbers: never drop them as a slow
	// consumer.
	_ = sub.SetPendingLimits(-1, -1)
	if err := b.nc.PublishMsg(&nats.Msg{Subject: subject, Reply: inbox, Data: data}); err != nil {
		return fmt.Errorf("bus: call %s: %w", subject, err)
	}
	control := ""
	stop := func() {
		if control != "" {
			_ = b.nc.Publish(control, nil)
			_ = b.nc.Flush()
		}
	}
	wait := o.FirstReply
	for {
		wctx, cancel := context.WithTimeout(ctx, wait)
		msg, err := sub.NextMsgWithContext(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			stop()
			return fmt.Errorf("bus: call %s: %w", subject, ctx.Err())
		case errors.Is(err, nats.ErrNoResponders):
			return fmt.Errorf("bus: call %s: %w", subject, ErrNoResponders)
		case errors.Is(err, context.DeadlineExceeded):
			stop()
			return fmt.Errorf("bus: call %s: %w within %s", subject, ErrCallSilent, wait)
		case err != nil:
			stop()
			return fmt.Errorf("bus: call %s: %w", subject, err)
		}
		// (The server answers "503 no responders" for us when no one
		// listens on subject: NextMsg turns it into ErrNoResponders.)
		if msg.Reply != "" {
			control = msg.Reply
		}
		wait = o.Idle
		if msg.Header.Get(headerHeartbeat) != "" {
			continue
		}
		done, err := fn(msg.Data)
		if err != nil {
			stop()
			return err
		}
		if done {
			return nil
		}
	}
}

// CallHandler runs one call: data is the request, reply sends a reply to
// the caller. ctx ends when the caller gives up or Serve's context ends.
type CallHandler func(ctx context.Context, data []byte, reply func([]byte) error)

// Serve answers calls on subject as one of queue group queue (each call
// goes to one server of the group) until ctx ends, each in its own
// goroutine. ready, if not nil, is set while calls are taken. It returns
// once the handlers have returned.
func (b *Bus) Serve(ctx context.Context, subject, queue string, ready *atomic.Bool, h CallHandler) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	sub, err := b.nc.QueueSubscribe(subject, queue, func(req *nats.Msg) {
		if req.Reply == "" {
			return
		}
		wg.Go(func() { b.serveOne(ctx, req, h) })
	})
	if err != nil {
		return fmt.Errorf("bus: serve %s: %w", subject, err)
	}
	// The server knows of the subscription once the flush returns: from
	// then on a caller finds it.
	if err := b.nc.FlushTimeout(setupTimeout); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("bus: serve %s: %w", subject, err)
	}
	if ready != nil {
		ready.Store(true)
		defer ready.Store(false)
	}
	<-ctx.Done()
	_ = sub.Unsubscribe()
	return nil
}

func (b *Bus) serveOne(ctx context.Context, req *nats.Msg, h CallHandler) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	control := b.nc.NewInbox()
	csub, err := b.nc.Subscribe(control, func(*nats.Msg) { cancel() })
	if err != nil {
		b.log.Warn("serve: control inbox", "subject", req.Subject, "err", err)
		return
	}
	defer func() { _ = csub.Unsubscribe() }()

	var mu sync.Mutex // one reply at a time: the caller sees them in order
	send := func(m *nats.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		if err := b.nc.PublishMsg(m); err != nil {
			return fmt.Errorf("bus: reply: %w", err)
		}
		return nil
	}
	reply := func(data []byte) error {
		return send(&nats.Msg{Subject: req.Reply, Reply: control, Data: data})
	}
	beat := &nats.Msg{Subject: req.Reply, Reply: control, Header: nats.Header{headerHeartbeat: []string{"1"}}}
	// A first heartbeat at once: the caller knows the call was taken.
	_ = send(beat)
	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan struct{})
	defer close(done)
	wg.Go(func() {
		t := time.NewTicker(CallHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = send(beat)
			}
		}
	})
	h(ctx, req.Data, reply)
	// The last reply must reach the caller before the control inbox goes.
	_ = b.nc.Flush()
}
