package main

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The healer's decision time, read from its metrics after each round.

// histogram accumulates hmd_heal_decision_seconds over healer rounds.
type histogram struct {
	count   float64
	buckets map[float64]float64
}

func (b *bench) scrape() error {
	resp, err := http.Get(metricsURL)
	if err != nil {
		return fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	if b.decisions.buckets == nil {
		b.decisions.buckets = map[float64]float64{}
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, `hmd_heal_decision_seconds_bucket{le="`):
			rest := strings.TrimPrefix(line, `hmd_heal_decision_seconds_bucket{le="`)
			le, val, _ := strings.Cut(rest, `"} `)
			if le == "+Inf" {
				continue
			}
			l, _ := strconv.ParseFloat(le, 64)
			v, _ := strconv.ParseFloat(val, 64)
			b.decisions.buckets[l] += v
		case strings.HasPrefix(line, "hmd_heal_decision_seconds_count "):
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, "hmd_heal_decision_seconds_count "), 64)
			b.decisions.count += v
		}
	}
	return sc.Err()
}

// String lists the cumulative bucket counts.
func (h histogram) String() string {
	les := make([]float64, 0, len(h.buckets))
	for le := range h.buckets {
		les = append(les, le)
	}
	slices.Sort(les)
	var parts []string
	for _, le := range les {
		parts = append(parts, fmt.Sprintf("≤%g ms: %.0f", le*1000, h.buckets[le]))
	}
	return strings.Join(parts, ", ")
}

// p99 is the upper bound of the bucket holding the 99th percentile.
func (h histogram) p99() string {
	les := make([]float64, 0, len(h.buckets))
	for le := range h.buckets {
		les = append(les, le)
	}
	slices.Sort(les)
	for _, le := range les {
		if h.buckets[le] >= 0.99*h.count {
			return "≤ " + strconv.FormatFloat(le*1000, 'g', 3, 64) + " ms"
		}
	}
	return "> largest bucket"
}
