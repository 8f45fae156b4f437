package auth

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/wxlogin/wxlogin/internal/claim"
	"github.com/wxlogin/wxlogin/internal/tracing"
)

// batcher sends together the requests that come while a batch is on its way: one
// round trip, and for writes one commit, for several logins at a peak. Nothing waits
// for company: a request goes at once when no batch is in flight.
type batcher[Q, A any] struct {
	name string // for traces
	max  int
	// send answers every call of a batch (sets its a or err).
	send func(ctx context.Context, batch []*call[Q, A])

	mu     sync.Mutex
	queue  []*call[Q, A]
	flying bool // a batch is on its way: requests that come now queue for the next
}

// call is one request of a batch, and then its answer.
type call[Q, A any] struct {
	q        Q
	deadline time.Time
	a        A
	err      error
	done     chan struct{}
	span     trace.SpanContext // the request's, when tracing is on
}

// do sends q with the requests that come with it and returns its answer.
func (b *batcher[Q, A]) do(ctx context.Context, q Q) (A, error) {
	c := &call[Q, A]{q: q, done: make(chan struct{})}
	c.deadline, _ = ctx.Deadline()
	if tracing.On() {
		c.span = trace.SpanContextFromContext(ctx)
	}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	lead := !b.flying
	b.flying = true
	b.mu.Unlock()
	if lead {
		b.fly()
	}
	select {
	case <-c.done:
		return c.a, c.err
	case <-ctx.Done():
		var zero A
		return zero, ctx.Err()
	}
}

// fly sends the requests queued, up to max, and leaves those that queue meanwhile to a
// goroutine of their own, so that no request waits on others' batches.
func (b *batcher[Q, A]) fly() {
	b.mu.Lock()
	n := min(len(b.queue), b.max)
	batch := b.queue[:n:n]
	b.queue = append([]*call[Q, A](nil), b.queue[n:]...)
	b.mu.Unlock()

	b.sendBatch(batch)

	b.mu.Lock()
	if len(b.queue) > 0 {
		go b.fly()
	} else {
		b.flying = false
	}
	b.mu.Unlock()
}

// sendBatch sends a batch, which has until the latest of its requests' deadlines (a
// request that runs out of time stops waiting), and ends every call of it.
func (b *batcher[Q, A]) sendBatch(batch []*call[Q, A]) {
	var deadline time.Time
	for _, c := range batch {
		if c.deadline.After(deadline) {
			deadline = c.deadline
		}
	}
	if deadline.IsZero() {
		deadline = time.Now().Add(claim.Lease)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if tracing.On() {
		var span trace.Span
		ctx, span = b.trace(ctx, batch)
		defer span.End()
	}
	defer func() {
		for _, c := range batch {
			close(c.done)
		}
	}()
	b.send(ctx, batch)
}

// trace starts the batch's span: a child of its first request's, linked to every
// request it serves, so that the statements it sends show in each login's trace.
func (b *batcher[Q, A]) trace(ctx context.Context, batch []*call[Q, A]) (context.Context, trace.Span) {
	var links []trace.Link
	for _, c := range batch {
		if c.span.IsValid() {
			if len(links) == 0 {
				ctx = trace.ContextWithSpanContext(ctx, c.span)
			}
			links = append(links, trace.Link{SpanContext: c.span})
		}
	}
	return otel.Tracer("github.com/wxlogin/wxlogin/internal/auth").Start(ctx, "auth: "+b.name,
		trace.WithLinks(links...), trace.WithAttributes(attribute.Int("wxlogin.batch.size", len(batch))))
}
