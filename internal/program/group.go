package program

import "github.com/oklog/run"

// Group is oklog/run's group, whose actors' panics become their errors: a
// bug in one component stops the process the way any failure does (the
// others are interrupted, the stack is logged, exit code 1) rather than
// killing it with Go's exit code 2, which means bad configuration here.
// The zero value is ready to use.
type Group struct{ g run.Group }

// Add adds an actor: execute runs until it returns or interrupt is called,
// which happens once the first actor has returned.
func (g *Group) Add(execute func() error, interrupt func(error)) {
	g.g.Add(func() (err error) {
		defer recovered(&err)
		return execute()
	}, interrupt)
}

// Run runs every actor and returns the first one's error once all are
// back.
func (g *Group) Run() error { return g.g.Run() }
