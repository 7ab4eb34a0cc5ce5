package bus

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/healmydocker/healmydocker/test/testkit/natstest"
)

// Closing the connection, as a split binary does when it stops or cannot
// start, is not a lost connection: nothing says it is being reconnected.
func TestClosedConnectionIsNotReportedLost(t *testing.T) {
	t.Parallel()
	hub := natstest.StartHub(t, natstest.HubOptions{})
	var mu sync.Mutex
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(p)
	}), nil))
	closed := make(chan struct{})
	nc, err := Connect(hub.ClientURL(), "", "", "", "test", TLS{}, log)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	nc.Close()
	<-closed // after the disconnect callback, on the same dispatcher
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logged.String(), "reconnecting") {
		t.Errorf("a closed connection is logged as lost: %s", logged.String())
	}
}

// A connection the server drops is still said to be lost.
func TestLostConnectionIsReported(t *testing.T) {
	t.Parallel()
	hub := natstest.StartHub(t, natstest.HubOptions{})
	lost := make(chan string, 1)
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		if strings.Contains(string(p), "reconnecting") {
			select {
			case lost <- string(p):
			default:
			}
		}
		return len(p), nil
	}), nil))
	nc, err := Connect(hub.ClientURL(), "", "", "", "test", TLS{}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	hub.Stop()
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Error("the lost connection was not logged")
	}
}
