package config

import "strings"

// DefaultLabel is the label name when none is configured, and the one whose
// =false and overrides apply when container_label is "all".
const DefaultLabel = "healme"

// Selected reports whether a container with these labels is to be healed.
// label=all selects every container; <name>=false always excludes one.
func Selected(labels map[string]string, label string) bool {
	name := LabelPrefix(label)
	if v, ok := labels[name]; ok && strings.EqualFold(strings.TrimSpace(v), "false") {
		return false
	}
	if label == "all" {
		return true
	}
	return strings.EqualFold(strings.TrimSpace(labels[name]), "true")
}

// LabelPrefix is the label whose value selects a container, and the prefix
// of its per-container overrides.
func LabelPrefix(label string) string {
	if label == "all" {
		return DefaultLabel
	}
	return label
}

// LabelError is an override label whose value could not be used.
type LabelError struct {
	Label    string
	Value    string
	Expected string
}

// PolicyFor applies the override labels <label>.<key> of one container to
// base. A bad value keeps the base value for that key and is reported.
func PolicyFor(base Policy, labels map[string]string, label string) (Policy, []LabelError) {
	prefix := LabelPrefix(label) + "."
	var errs []LabelError
	c := Config{Policy: base}
	for _, s := range settings() {
		if !s.perContainer {
			continue
		}
		v, ok := labels[prefix+s.key]
		if !ok {
			continue
		}
		before := c
		if err := s.set(&c, v); err != nil {
			c = before
			errs = append(errs, LabelError{Label: prefix + s.key, Value: v, Expected: err.Error()})
		}
	}
	return c.Policy, errs
}
