package notify

import (
	"fmt"
	"text/template"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/internal/safe"
)

// The notifier is a pipeline: a JetStream source (source.go) hands each
// runner a group of messages; the stages below, plain functions without
// I/O, pick what the runner's target is told and how; a sender (send.go)
// delivers it, retrying as retryPolicy and judge say.
//
//	collect (group) -> planBatch (decode, drop what was told) -> destination
//	(route) -> recipient.takes (route + level) -> compose (escape, render)
//	-> send (judge, retryPolicy)

// destination is the route stage: where e goes. Events stored by an older
// healer name their container's target and level themselves; the rest are
// looked up by their container.
func destination(e events.Event, routing *Routing) Destination {
	if e.Data.NotifyTarget != "" || e.Data.NotifyLevel != "" {
		return Destination{Target: e.Data.NotifyTarget, Level: e.Data.NotifyLevel}
	}
	switch e.Kind() {
	case events.CleanupRemoved, events.CleanupFailed, events.CleanupKept:
		// The cleaner's housekeeping is the operator's: a duplicate
		// compose left behind is not its owner's to hear of (and its
		// labels are the duplicate's, not the service's).
		return Destination{}
	}
	return routing.Lookup(e.Data.Host, e.Subject, e.Data.ContainerID)
}

// recipient is a runner's target as the route stage sees it.
type recipient struct {
	// ID is the target id events are routed to.
	ID string
	// Default: the target takes the containers without a target of their
	// own.
	Default bool
	// Level is the target's own level.
	Level Level
}

// level says whether rc takes events routed to d, and at which level: the
// container's own, else the target's.
func (rc recipient) level(d Destination) (Level, bool) {
	if d.Target == "" && !rc.Default || d.Target != "" && d.Target != rc.ID {
		return 0, false
	}
	if d.Level != "" {
		if l, err := ParseLevel(d.Level); err == nil {
			return l, true
		}
	}
	return rc.Level, true
}

// takes is the route and level stage: whether rc is told of e, routed to d.
func (rc recipient) takes(d Destination, e events.Event) bool {
	l, ok := rc.level(d)
	return ok && Wants(l, e)
}

// received is one message of a group as the source hands it out.
type received struct {
	Subject string
	Data    []byte
	// Meta: Seq, Time and Delivered were read from the message.
	Meta      bool
	Seq       uint64
	Time      time.Time
	Delivered uint64
}

// batch is what a group of messages comes to for one target.
type batch struct {
	// Wanted are the events the target is told of, in stream order.
	Wanted []events.Event
	// Stale counts the messages already told (a consumer made again
	// handed them out again); Undecodable names those that are not events.
	Stale       int
	Undecodable []error
	// Pos and PosTime are the last stream position of the group: where a
	// consumer made again resumes once the group is handled.
	Pos     uint64
	PosTime time.Time
}

// planBatch is the grouping stage: it decodes a group, drops what a
// runner at stream position pos has told already, and keeps what takes
// wants.
func planBatch(msgs []received, pos uint64, posTime time.Time, takes func(events.Event) bool) batch {
	b := batch{Pos: pos, PosTime: posTime}
	for _, m := range msgs {
		if m.Meta && m.Seq > b.Pos {
			b.Pos, b.PosTime = m.Seq, m.Time
		}
		// A consumer made again may start before where the runner is (it
		// was deleted while the acks of the last group were on their way):
		// what it hands out the first time at or below pos was told.
		if m.Meta && pos > 0 && m.Delivered == 1 && m.Seq <= pos {
			b.Stale++
			continue
		}
		e, err := events.Unmarshal(m.Data)
		if err != nil {
			// Bounded: the decoder quotes the message's id and version.
			b.Undecodable = append(b.Undecodable, fmt.Errorf("%s: %s", safe.Bound(m.Subject, 256), safe.Bound(err.Error(), 512)))
			continue
		}
		if takes(e) {
			b.Wanted = append(b.Wanted, e)
		}
	}
	return b
}

// compose is the escaping and rendering stage: the message for evs, with
// their outside text escaped by esc. A template that fails still tells
// what happened, as the events' kinds; err says why.
func compose(t *template.Template, evs []events.Event, esc Escape) (text string, err error) {
	text, err = Render(t, evs, esc)
	if err != nil {
		return fallback(evs, esc), err
	}
	return text, nil
}

func fallback(evs []events.Event, esc Escape) string {
	if esc == nil {
		esc = EscapePlain
	}
	s := ""
	for _, e := range evs {
		s += esc(e.Data.Host+" "+e.Subject) + ": " + string(e.Kind()) + "\n"
	}
	return s
}

// Results of a delivery attempt, as counted by target.
const (
	resultOK      = "ok"
	resultRefused = "refused"
	resultError   = "error"
)

// judge is the retry stage's verdict on one attempt: its result, and the
// error to retry on; a refusal is permanent: sending it again would be
// refused again.
func judge(retry bool, err error) (result string, again error) {
	switch {
	case err == nil:
		return resultOK, nil
	case !retry:
		return resultRefused, backoff.Permanent(err)
	default:
		return resultError, err
	}
}

// retryPolicy is the wait between attempts: a second, doubling up to
// maxWait (at least a second), retried until the target takes the message.
func retryPolicy(maxWait time.Duration) backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.Multiplier, b.RandomizationFactor = time.Second, 2, 0
	b.MaxInterval = max(maxWait, time.Second)
	return b
}
