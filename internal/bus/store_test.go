package bus

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/healmydocker/healmydocker/internal/events"
	"github.com/healmydocker/healmydocker/test/testkit"
)

func streamConfig(t *testing.T, b *Bus, name string) jetstream.StreamConfig {
	t.Helper()
	s, err := b.JetStream().Stream(context.Background(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return s.CachedInfo().Config
}

// Reading a stopped healer's store (healer events --data-dir) leaves its
// retention and bounds as the healer set them.
func TestReadOnlyOpenKeepsConfig(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b, err := Open(ctx, Options{DataDir: dir, Retention: time.Hour, EventsMaxBytes: 10 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.OpenHistory(ctx, "h", HistoryOptions{PerContainer: 7, MaxAge: time.Hour, MaxBytes: 5 << 20}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	want := streamConfig(t, b, EventsStream)
	wantHist := streamConfig(t, b, HistoryStream)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, Options{DataDir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	got, gotHist := streamConfig(t, r, EventsStream), streamConfig(t, r, HistoryStream)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got.MaxAge != want.MaxAge || got.MaxBytes != want.MaxBytes || got.MaxAge != time.Hour || got.MaxBytes != 10<<20 {
		t.Errorf("events stream after a read-only open: max age %s, max bytes %d; want %s, %d", got.MaxAge, got.MaxBytes, want.MaxAge, want.MaxBytes)
	}
	if gotHist.MaxMsgsPerSubject != wantHist.MaxMsgsPerSubject || gotHist.MaxBytes != wantHist.MaxBytes || gotHist.MaxAge != wantHist.MaxAge {
		t.Errorf("history after a read-only open: %+v, want %+v", gotHist, wantHist)
	}
	// A read-only open of a dir without a store fails; it creates nothing.
	empty := filepath.Join(t.TempDir(), "none")
	if err := os.Mkdir(empty, 0o750); err != nil {
		t.Fatal(err)
	}
	if r, err := Open(ctx, Options{DataDir: empty, ReadOnly: true}); err == nil {
		_, serr := r.JetStream().Stream(ctx, EventsStream)
		_ = r.Close()
		if !errors.Is(serr, jetstream.ErrStreamNotFound) {
			t.Errorf("read-only open of an empty dir created the events stream (%v)", serr)
		}
	}
}

// Every stream and bucket the healer keeps has a byte bound.
func TestEveryStreamHasAByteBound(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b := open(t, dir)
	defer func() { _ = b.Close() }()
	if _, err := b.OpenHistory(ctx, "h", HistoryOptions{PerContainer: 5}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RoutesBucket(ctx); err != nil {
		t.Fatal(err)
	}
	names := b.JetStream().StreamNames(ctx)
	n := 0
	for name := range names.Name() {
		n++
		cfg := streamConfig(t, b, name)
		if cfg.MaxBytes <= 0 {
			t.Errorf("stream %s has no byte bound", name)
		}
		// A bucket refuses new keys when full (a key-value store must);
		// streams drop their oldest events.
		if cfg.Discard != jetstream.DiscardOld && !strings.HasPrefix(name, "KV_") {
			t.Errorf("stream %s refuses new events when full (discard %v)", name, cfg.Discard)
		}
	}
	if n != 4 {
		t.Errorf("%d streams, want events, history, states and routes", n)
	}
	if got := streamConfig(t, b, EventsStream).MaxBytes; got != DefaultEventsMaxBytes {
		t.Errorf("events bound %d, want the default %d", got, DefaultEventsMaxBytes)
	}
}

// Far more events than the bound leave the stream and the data dir
// inside it: the oldest go.
func TestEventsStayInsideTheBound(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	const bound = 1 << 20
	b, err := Open(ctx, Options{DataDir: dir, EventsMaxBytes: bound})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	p := NewPublisher(b.JetStream(), 0, 0, slog.New(slog.DiscardHandler))
	p.Attach(b)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, 10*time.Second) }()
	const n = 12_000 // about 4 MB of events
	for i := range n {
		p.Publish(ev(i))
	}
	testkit.Until(t, 60*time.Second, "the events to be stored", func() bool { return p.Pending() == 0 })
	cancel()
	<-done
	s, err := b.JetStream().Stream(context.Background(), EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Bytes > bound {
		t.Errorf("stream holds %d bytes, bound %d", info.State.Bytes, bound)
	}
	if info.State.LastSeq != n || info.State.Msgs >= n {
		t.Errorf("last seq %d, msgs %d: want %d stored and the oldest dropped", info.State.LastSeq, info.State.Msgs, n)
	}
	// On disk a stream may pass its bound by the block being written:
	// the file store's blocks are at most 8 MiB.
	if size := dirSize(t, filepath.Join(dir, "jetstream")); size > bound+maxBlock {
		t.Errorf("store takes %d bytes on disk for a %d-byte bound", size, bound)
	}
}

// maxBlock is the file store's largest block.
const maxBlock = 8 << 20

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var size int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			size += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return size
}

// A store that cannot be opened at start: the bus runs without JetStream,
// says why, and once the dir is usable comes back by itself; what was
// queued meanwhile is stored in order.
func TestDegradedAtStartRecovers(t *testing.T) {
	dir := t.TempDir()
	// JetStream cannot make its directory where a file is.
	blocker := filepath.Join(dir, "jetstream")
	if err := os.WriteFile(blocker, []byte("not a dir"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var states []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := Open(ctx, Options{DataDir: dir, OnState: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			states = append(states, "up")
		} else {
			states = append(states, "down")
		}
	}})
	if err != nil {
		t.Fatalf("open on a broken data dir failed instead of degrading: %v", err)
	}
	defer func() { _ = b.Close() }()
	if err := b.Ready(); err == nil || !strings.Contains(err.Error(), "store degraded") {
		t.Fatalf("ready while degraded: %v", err)
	}
	hist, err := b.OpenHistory(ctx, "h", HistoryOptions{PerContainer: 5}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("history while degraded: %v", err)
	}
	if initial, _, _, err := hist.LoadStates(ctx); err != nil || len(initial) != 0 {
		t.Fatalf("states while degraded: %v, %d containers", err, len(initial))
	}
	p := NewPublisher(b.JetStream(), 0, 0, slog.New(slog.DiscardHandler))
	p.Attach(b)
	done := make(chan error, 2)
	go func() { done <- p.Run(ctx, 10*time.Second) }()
	go func() { done <- hist.Run(ctx) }()
	for i := range 5 {
		p.Publish(ev(i))
		e := ev(100 + i)
		e.Data.Host, e.Data.ContainerID = "h", "c0ffee"
		hist.Publish(e)
	}
	time.Sleep(300 * time.Millisecond) // a few retries' worth, so the test sees them held
	if p.Pending() != 5 || hist.Pending() != 5 {
		t.Fatalf("pending %d events, %d history while degraded; want 5 and 5", p.Pending(), hist.Pending())
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	testkit.Until(t, 30*time.Second, "the store to come back", func() bool { return b.Ready() == nil })
	testkit.Until(t, 10*time.Second, "the queue to be stored", func() bool { return p.Pending() == 0 && hist.Pending() == 0 })
	s, err := b.JetStream().Stream(ctx, EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		m, err := s.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		e, err := events.Unmarshal(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if e.ID != ev(i).ID {
			t.Errorf("seq %d is %s, want event %d in order", i+1, e.ID, i)
		}
	}
	mu.Lock()
	got := strings.Join(states, ",")
	mu.Unlock()
	if got != "down,up" {
		t.Errorf("state changes %q, want down,up", got)
	}
	if p.Dropped() != 0 {
		t.Errorf("dropped %d", p.Dropped())
	}
}

// A stream the server cannot load is moved aside, kept, and a fresh one
// takes its place.
func TestCorruptStreamMovedAside(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b := open(t, dir)
	p := NewPublisher(b.JetStream(), 0, 0, slog.New(slog.DiscardHandler))
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx, 10*time.Second) }()
	for i := range 3 {
		p.Publish(ev(i))
	}
	testkit.Until(t, 10*time.Second, "the events to be stored", func() bool { return p.Pending() == 0 })
	cancel()
	<-done
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(dir, "jetstream", "$G", "streams", EventsStream, "meta.inf")
	if err := os.WriteFile(meta, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	b = open(t, dir)
	defer func() { _ = b.Close() }()
	if err := b.Ready(); err != nil {
		t.Fatalf("not ready after replacing a corrupt stream: %v", err)
	}
	if n := streamMsgs(t, b); n != 0 {
		t.Errorf("fresh stream holds %d", n)
	}
	aside, err := filepath.Glob(filepath.Join(dir, "corrupt", EventsStream+"-*", "meta.inf"))
	if err != nil || len(aside) != 1 {
		t.Fatalf("corrupt stream not kept aside: %v %v", aside, err)
	}
	if b, err := os.ReadFile(aside[0]); err != nil || string(b) != "{garbage" {
		t.Errorf("kept meta %q, %v", b, err)
	}
}

// With the store down: past the queue bound the oldest events are dropped,
// counted and logged once; at shutdown what is left is counted, without
// waiting out the flush for a store that is not there.
func TestPublisherCountsWhatItCannotStore(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "jetstream"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Open(context.Background(), Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	p := NewPublisher(b.JetStream(), 3, 0, log)
	p.Attach(b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, 10*time.Second) }()
	for i := range 5 {
		p.Publish(ev(i))
	}
	if got := p.Dropped(); got != 2 {
		t.Errorf("dropped %d past a bound of 3, want 2", got)
	}
	start := time.Now()
	cancel()
	<-done
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown with the store down took %s", took)
	}
	if p.Unstored() != 3 || p.Dropped() != 5 {
		t.Errorf("unstored %d, dropped %d; want 3 and 5", p.Unstored(), p.Dropped())
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "event queue full"); n != 1 {
		t.Errorf("queue-full logged %d times, want once:\n%s", n, logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
