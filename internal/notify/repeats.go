package notify

import (
	"crypto/sha256"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

// panicRepeat is how long a target hears of one part's bug once: a bug
// hit on every event of some container would otherwise be a message per
// group, and a muted channel hears nothing else either.
const panicRepeat = time.Hour

// maxPanicsKept bounds the parts remembered per target.
const maxPanicsKept = 1000

// repeats is the repeat stage: it remembers, per target, which parts'
// bugs it was told of and when, and keeps a second telling back for
// panicRepeat. Each runner owns one; it is not safe for concurrent use.
type repeats struct {
	told map[string]time.Time
}

// keep returns evs without the healer.panic events of a part (host and
// where) told within panicRepeat before now, once each within evs too, and
// how many it held back. It changes nothing: told marks the parts once the
// target has them, so that a group handed back is told in full.
func (r *repeats) keep(evs []events.Event, now time.Time) (kept []events.Event, held int, parts []string) {
	kept = evs[:0:0]
	seen := map[string]bool{}
	for _, e := range evs {
		if e.Kind() != events.HealerPanic {
			kept = append(kept, e)
			continue
		}
		key := partKey(e)
		if at, ok := r.told[key]; ok && now.Sub(at) < panicRepeat || seen[key] {
			held++
			continue
		}
		seen[key] = true
		parts = append(parts, key)
		kept = append(kept, e)
	}
	return kept, held, parts
}

// partKey names a bug's part, host and where, in a fixed size: both come
// from the stream, and a compromised host can make them megabytes.
func partKey(e events.Event) string {
	sum := sha256.Sum256([]byte(e.Data.Host + "\x00" + e.Data.Reason))
	return string(sum[:])
}

// mark remembers that parts were told at now.
func (r *repeats) mark(parts []string, now time.Time) {
	for _, key := range parts {
		if r.told == nil {
			r.told = map[string]time.Time{}
		}
		if len(r.told) >= maxPanicsKept {
			r.forget(now)
		}
		r.told[key] = now
	}
}

// forget drops what is past panicRepeat; if all is recent, everything.
func (r *repeats) forget(now time.Time) {
	for k, at := range r.told {
		if now.Sub(at) >= panicRepeat {
			delete(r.told, k)
		}
	}
	if len(r.told) >= maxPanicsKept {
		clear(r.told)
	}
}
