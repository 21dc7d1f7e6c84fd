// Package grace gives work in flight at shutdown a bounded time to finish.
//
// A service stops when its Run context ends, but cutting a fetch or a
// delivery mid-way loses its result (a fetched feed not published, a sent
// message not recorded). So that work runs on a context that outlives
// Run's by a grace period.
package grace

import (
	"context"
	"sync"
	"time"
)

// Context returns a context for work that may outlive parent by d. It has
// parent's values but not its cancellation: it ends d after parent does,
// or when cancel is called. cancel also stops the grace timer, so nothing
// started here outlives it; callers defer it.
//
// The work can tell that its grace period has begun with Stopping.
func Context(parent context.Context, d time.Duration) (ctx context.Context, cancel context.CancelFunc) {
	base := context.WithValue(context.WithoutCancel(parent), stoppedKey{}, parent.Done())
	ctx, cancelCtx := context.WithCancel(base)
	var (
		mu       sync.Mutex
		timer    *time.Timer
		canceled bool
	)
	stopAfter := context.AfterFunc(parent, func() {
		mu.Lock()
		defer mu.Unlock()
		if !canceled {
			timer = time.AfterFunc(d, cancelCtx)
		}
	})
	return ctx, func() {
		stopAfter()
		mu.Lock()
		canceled = true
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancelCtx()
	}
}

type stoppedKey struct{}

// Stopped returns a channel that is closed once the grace period of ctx
// has begun (the parent given to Context has ended): what is in flight may
// finish, nothing new should start, and waits should end early. Outside a
// grace context it returns nil, a channel that never closes.
func Stopped(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(stoppedKey{}).(<-chan struct{})
	return ch
}

// Stopping reports whether the grace period of ctx has begun.
func Stopping(ctx context.Context) bool {
	select {
	case <-Stopped(ctx):
		return true
	default:
		return false
	}
}
