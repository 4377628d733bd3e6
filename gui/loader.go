package gui

import (
	"context"
	"sync"
	"time"
)

// loader fetches one value off the window's goroutine (from the engine, which may ask a
// cluster) and hands it back: get starts the fetch for a key and returns what is there now;
// when the fetch ends, invalidate asks for a new frame. A new key drops the old result.
type loader[T any] struct {
	mu      sync.Mutex
	key     string
	val     T
	err     error
	loading bool
	at      time.Time
	cancel  context.CancelFunc
}

// get returns the value for key, whether it is still loading, and the error of its load.
// refresh forces a new load of the same key.
func (l *loader[T]) get(key string, refresh bool, load func(context.Context) (T, error), invalidate func()) (T, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if key != l.key || refresh {
		if l.cancel != nil {
			l.cancel()
		}
		var zero T
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		l.key, l.val, l.err, l.loading, l.cancel = key, zero, nil, true, cancel
		go func() {
			v, err := load(ctx)
			l.mu.Lock()
			if l.key == key && ctx.Err() == nil {
				l.val, l.err, l.loading, l.at = v, err, false, time.Now()
			}
			l.mu.Unlock()
			cancel()
			if invalidate != nil {
				invalidate()
			}
		}()
	}
	return l.val, l.loading, l.err
}
