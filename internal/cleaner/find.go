// Package cleaner owns the removal of the duplicate containers that
// docker-compose leaves behind under <12 hex>_<name>. Find decides, purely;
// the Cleaner looks again, stops, removes and publishes.
package cleaner

import (
	"regexp"
	"strings"
	"time"

	"github.com/healmydocker/healmydocker/internal/events"
)

// Compose's labels on the containers it makes.
const (
	LabelProject = "com.docker.compose.project"
	LabelService = "com.docker.compose.service"
	LabelNumber  = "com.docker.compose.container-number"
	LabelOneoff  = "com.docker.compose.oneoff"
)

// prefixRE matches one or more <12 hex>_ prefixes; compose may chain them.
var prefixRE = regexp.MustCompile(`^(?:[0-9a-f]{12}_)+`)

// Strip returns the name without its temporary prefixes, and whether it had any.
func Strip(name string) (string, bool) {
	name = strings.TrimPrefix(name, "/")
	loc := prefixRE.FindStringIndex(name)
	if loc == nil || loc[1] == len(name) {
		return name, false
	}
	return name[loc[1]:], true
}

// Action is what Find says to do with a prefixed container.
type Action int

const (
	// Remove the duplicate.
	Remove Action = iota + 1
	// Keep it, and say why.
	Keep
	// Wait: keep it for now and look again at Finding.RetryAt.
	Wait
)

// Finding is Find's verdict on one prefixed container.
type Finding struct {
	Duplicate events.Container
	// Canonical is the sibling without the prefix, nil if there is none.
	Canonical *events.Container
	Action    Action
	Reason    string
	RetryAt   time.Time
}

// Reasons.
const (
	ReasonDuplicate   = "duplicate of a running canonical container"
	ReasonNoSibling   = "no canonical sibling: the prefixed container may be the only live one"
	ReasonNotReady    = "canonical sibling is not running and healthy"
	ReasonGrace       = "younger than the grace period; a compose run may still be going"
	ReasonNotCompose  = "not a compose container"
	ReasonChanged     = "changed between the sweep and the removal"
	ReasonDryRun      = "dry run: would remove"
	ReasonNotSelected = "not selected"
)

type key struct{ project, service, number string }

func composeKey(c events.Container) (key, bool) {
	k := key{c.Labels[LabelProject], c.Labels[LabelService], c.Labels[LabelNumber]}
	oneoff := c.Labels[LabelOneoff]
	if k.project == "" || k.service == "" || k.number == "" || (oneoff != "" && !strings.EqualFold(oneoff, "false")) {
		return key{}, false
	}
	return k, true
}

// Find looks at every container and returns a finding for each prefixed
// compose container. Prefixed containers without compose labels are not
// compose's leftovers and get no finding.
func Find(cs []events.Container, now time.Time, grace time.Duration) []Finding {
	canon := map[key]*events.Container{}
	for i := range cs {
		c := &cs[i]
		k, ok := composeKey(*c)
		if !ok {
			continue
		}
		if _, prefixed := Strip(c.Name); !prefixed {
			canon[k] = c
		}
	}
	var out []Finding
	for _, c := range cs {
		base, prefixed := Strip(c.Name)
		if !prefixed {
			continue
		}
		k, ok := composeKey(c)
		if !ok {
			continue
		}
		f := Finding{Duplicate: c}
		sib := canon[k]
		if sib != nil && sib.Name == base {
			f.Canonical = sib
		}
		f.Action, f.Reason, f.RetryAt = judge(c, f.Canonical, now, grace)
		out = append(out, f)
	}
	return out
}

func judge(dup events.Container, canon *events.Container, now time.Time, grace time.Duration) (Action, string, time.Time) {
	switch {
	case canon == nil:
		return Keep, ReasonNoSibling, time.Time{}
	case !canon.Running || (canon.HasHealthcheck && canon.Health != "healthy"):
		return Keep, ReasonNotReady, time.Time{}
	case now.Sub(dup.Created) < grace:
		return Wait, ReasonGrace, dup.Created.Add(grace)
	}
	return Remove, ReasonDuplicate, time.Time{}
}

// Unchanged says whether a container looked at again just before removal
// is still what Find judged: same name, labels and state.
func Unchanged(before, now events.Container) bool {
	if before.ID != now.ID || before.Name != now.Name || len(before.Labels) != len(now.Labels) {
		return false
	}
	for k, v := range before.Labels {
		if now.Labels[k] != v {
			return false
		}
	}
	return true
}

// StillCanonical says whether a canonical sibling looked at again is still
// running, and healthy if it has a health check.
func StillCanonical(c events.Container) bool {
	return c.Running && (!c.HasHealthcheck || c.Health == "healthy")
}
