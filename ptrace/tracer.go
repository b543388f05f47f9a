package ptrace

import (
	"errors"
	"runtime"
	"sync"
)

// Tracer owns one locked OS thread on which all ptrace work runs.
type Tracer struct {
	work chan func()
	once sync.Once
	done chan struct{}
}

// NewTracer starts the tracer thread.
func NewTracer() *Tracer {
	t := &Tracer{work: make(chan func()), done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		// Never unlocked: the thread ends with the goroutine, which is what we
		// want if a tracee is still attached (the kernel then detaches it).
		runtime.LockOSThread()
		close(ready)
		for {
			select {
			case f := <-t.work:
				f()
			case <-t.done:
				return
			}
		}
	}()
	<-ready
	return t
}

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("ptrace: tracer closed")

// Do runs f on the tracer thread and returns its error.
func (t *Tracer) Do(f func() error) error {
	errc := make(chan error, 1)
	run := func() {
		defer func() {
			if r := recover(); r != nil {
				errc <- panicError{r}
			}
		}()
		errc <- f()
	}
	select {
	case t.work <- run:
	case <-t.done:
		return ErrClosed
	}
	return <-errc
}

type panicError struct{ v any }

func (p panicError) Error() string { return "ptrace: panic on tracer thread: " + toString(p.v) }

func toString(v any) string {
	if e, ok := v.(error); ok {
		return e.Error()
	}
	if s, ok := v.(string); ok {
		return s
	}
	return "unknown panic"
}

// Close stops the tracer thread. Tracees still attached are detached by the
// kernel when the thread exits, so callers detach or kill them first.
func (t *Tracer) Close() {
	t.once.Do(func() { close(t.done) })
}
