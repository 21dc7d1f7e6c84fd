package backtest

import (
	"sync"

	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/classifier"
)

// Queue sizes of the pipeline: how many items may be read ahead of the
// one being reported. They bound its memory.
const (
	jobsPerWorker = 64
	readAhead     = 1024
)

// job is one message of FEEDMON_ITEMS on its way through the pipeline.
type job struct {
	data []byte
	// Set by a worker before ready is closed.
	it    *event.Item // nil: not an item
	res   classifier.Result
	ready chan struct{}
}

// pipeline decodes and classifies items on several goroutines (one per
// core: reading from NATS and classifying then overlap, and a backtest
// uses the machine) and hands them to emit one at a time, in the order
// they were added, so that the report follows the stream.
type pipeline struct {
	jobs    chan *job
	order   chan *job
	workers sync.WaitGroup
	// done is closed when the emitting goroutine has ended; err is then
	// emit's first error.
	done chan struct{}
	err  error
}

func startPipeline(c *classifier.Classifier, explain bool, workers int, emit func(*job) error) *pipeline {
	p := &pipeline{
		jobs:  make(chan *job, workers*jobsPerWorker),
		order: make(chan *job, readAhead),
		done:  make(chan struct{}),
	}
	for range workers {
		p.workers.Go(func() {
			for j := range p.jobs {
				if it, err := event.Unmarshal(j.data); err == nil {
					j.it, j.res = it, c.ClassifyItem(it, explain)
				}
				close(j.ready)
			}
		})
	}
	go func() {
		defer close(p.done)
		for j := range p.order {
			<-j.ready
			if err := emit(j); err != nil {
				p.err = err
				return
			}
		}
	}()
	return p
}

// add queues one message body; it fails with emit's error once emit
// has failed.
func (p *pipeline) add(data []byte) error {
	j := &job{data: data, ready: make(chan struct{})}
	select {
	case p.order <- j:
	case <-p.done:
		return p.err
	}
	p.jobs <- j // the workers take every job, whatever emit does
	return nil
}

// close waits for every job added to be emitted (or for emit to fail)
// and returns emit's error.
func (p *pipeline) close() error {
	close(p.jobs)
	close(p.order)
	p.workers.Wait()
	<-p.done
	return p.err
}
