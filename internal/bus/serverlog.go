package bus

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// slogAdapter sends the server's logs through slog.
type slogAdapter struct {
	log    *slog.Logger
	domain string

	// storeErr hears the server's errors: a write error leaves a stream
	// failing every write, and JetStream enabled, without telling clients
	// more than a missing ack.
	storeErr func(error)

	mu          sync.Mutex
	lastLeaf    string
	lastAt      time.Time
	lastErr     string
	fatalLogged bool
}

// fatalSeen says the server gave up on something at start: with
// JetStream failing, Start logs it as fatal and returns half done.
func (a *slogAdapter) fatalSeen() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fatalLogged
}

// fatal is the last error the server logged: why JetStream did not start.
func (a *slogAdapter) fatal() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lastErr == "" {
		return "unknown error"
	}
	return a.lastErr
}

func (a *slogAdapter) remember(msg string) {
	a.mu.Lock()
	a.lastErr = msg
	a.mu.Unlock()
	if a.storeErr != nil {
		a.storeErr(errors.New(msg))
	}
}

// leafError says the server's leaf-node errors once a minute, not once a
// reconnect, and says plainly what a refusal means.
func (a *slogAdapter) leafError(msg string) bool {
	if !strings.Contains(strings.ToLower(msg), "leafnode") {
		return false
	}
	a.mu.Lock()
	repeat := msg == a.lastLeaf && time.Since(a.lastAt) < time.Minute
	if !repeat {
		a.lastLeaf, a.lastAt = msg, time.Now()
	}
	a.mu.Unlock()
	if repeat {
		return true
	}
	if strings.Contains(msg, "Duplicate Remote LeafNode Connection") || strings.Contains(msg, "Replacing connection from same server") {
		a.log.Error("another host with this host's name is linked to the hub (a host cloned from one image?): the hub keeps only one of the two, and their events would mix; give each host its own HMD_HOST_NAME", "domain", a.domain, "server", msg)
		return true
	}
	if strings.Contains(msg, "Authorization Violation") {
		a.log.Error("the hub refused this host's leaf-node credentials (hub_user, hub_password); healing goes on here and events wait in this host's stream", "server", msg)
		return true
	}
	a.log.Warn("hub link: " + msg + "; healing goes on here and events wait in this host's stream")
	return true
}

// Notices are the server's start-up banner and chatter: debug for us.
func (a *slogAdapter) Noticef(f string, v ...any) { a.log.Debug(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Warnf(f string, v ...any) {
	if msg := fmt.Sprintf(f, v...); !a.leafError(msg) {
		a.log.Warn(msg)
	}
}
func (a *slogAdapter) Fatalf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	a.mu.Lock()
	a.fatalLogged = true
	a.mu.Unlock()
	a.remember(msg)
	a.log.Error(msg)
}
func (a *slogAdapter) Errorf(f string, v ...any) {
	if msg := fmt.Sprintf(f, v...); !a.leafError(msg) {
		a.remember(msg)
		a.log.Error(msg)
	}
}
func (a *slogAdapter) Debugf(f string, v ...any) { a.log.Debug(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Tracef(f string, v ...any) { a.log.Debug(fmt.Sprintf(f, v...)) }
