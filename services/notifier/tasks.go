package notifier

import "sync"

// tasks runs the short-lived parallel parts of a delivery (one job per
// receiver, one story decision per subscriber) on goroutines kept for
// reuse. A fresh goroutine per job would grow its stack again, copying,
// for every message: encoding a ledger entry, a NATS request and an HTTP
// send need tens of kilobytes of it.
type tasks struct {
	queue chan func()
	quit  chan struct{}
	wg    sync.WaitGroup
}

func newTasks() *tasks {
	return &tasks{queue: make(chan func()), quit: make(chan struct{})}
}

// Go runs f on an idle goroutine of t, or a new one that stays for later
// tasks, and counts it in wg. A nil t runs f on a goroutine of its own.
func (t *tasks) Go(wg *sync.WaitGroup, f func()) {
	if t == nil {
		wg.Go(f)
		return
	}
	wg.Add(1)
	task := func() {
		defer wg.Done()
		f()
	}
	select {
	case t.queue <- task:
	default:
		t.wg.Go(func() { t.work(task) })
	}
}

// work runs task, then every task handed to it, until t stops.
func (t *tasks) work(task func()) {
	for {
		task()
		select {
		case task = <-t.queue:
		case <-t.quit:
			return
		}
	}
}

// stop ends the idle goroutines once the tasks in flight are done. A task
// handed to t after it runs on a goroutine of its own.
func (t *tasks) stop() {
	close(t.quit)
	t.wg.Wait()
}
