package app

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/healmydocker/healmydocker/internal/bus"
)

// streamCollector reports the events stream's size from one stream-info
// request per scrape.
type streamCollector struct {
	state       func() jetstream.StreamState
	msgs, bytes *prometheus.Desc
}

func newStreamCollector(state func() jetstream.StreamState) streamCollector {
	return streamCollector{state: state,
		msgs:  prometheus.NewDesc("hmd_bus_stream_messages", "Events held in the events stream.", nil, nil),
		bytes: prometheus.NewDesc("hmd_bus_stream_bytes", "Bytes held in the events stream.", nil, nil),
	}
}

func (c streamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.msgs
	ch <- c.bytes
}

func (c streamCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.state()
	ch <- prometheus.MustNewConstMetric(c.msgs, prometheus.GaugeValue, float64(st.Msgs))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes))
}

func (a *App) streamState() jetstream.StreamState {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := a.bus.JetStream().Stream(ctx, bus.EventsStream)
	if err != nil {
		return jetstream.StreamState{}
	}
	return s.CachedInfo().State
}
