// Package waitlog is a log of things that tests wait on: append from any
// goroutine, wait for the nth match with a deadline, no sleeps.
package waitlog

import (
	"sync"
	"time"
)

// Log records values in arrival order.
type Log[T any] struct {
	mu   sync.Mutex
	all  []T
	wake chan struct{}
}

// New returns an empty log.
func New[T any]() *Log[T] { return &Log[T]{wake: make(chan struct{})} }

// Add appends v and wakes waiters.
func (l *Log[T]) Add(v T) {
	l.mu.Lock()
	l.all = append(l.all, v)
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
}

// WaitNth returns the nth (from 1) value matching match, waiting up to d.
// match must not call back into l.
func (l *Log[T]) WaitNth(d time.Duration, n int, match func(T) bool) (T, bool) {
	deadline := time.After(d)
	for {
		l.mu.Lock()
		seen := 0
		for _, v := range l.all {
			if match(v) {
				if seen++; seen == n {
					l.mu.Unlock()
					return v, true
				}
			}
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-deadline:
			var zero T
			return zero, false
		}
	}
}

// All returns the values so far that match.
func (l *Log[T]) All(match func(T) bool) []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []T
	for _, v := range l.all {
		if match(v) {
			out = append(out, v)
		}
	}
	return out
}

// Len is the number of values so far.
func (l *Log[T]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}
