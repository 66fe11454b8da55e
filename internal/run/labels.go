package run

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Labels name what a runner offers (an agent's --labels, a server's --labels) and what a job
// asks for (YAML runs-on): keys and values of 1 to 100 characters of A-Z a-z 0-9 . _ / -, at
// most MaxLabels of them. A job whose RunsOn is not empty goes only to a runner whose labels
// hold every one of its keys with the same value (LabelsMatch).

// MaxLabels bounds the labels of a runner or a job.
const MaxLabels = 32

var labelRE = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,100}$`)

// LabelOK reports whether s may be a label's key or value.
func LabelOK(s string) bool { return labelRE.MatchString(s) }

// ParseLabels reads labels written k=v,k=v ("" gives none).
func ParseLabels(s string) (map[string]string, error) {
	labels := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return labels, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || !LabelOK(k) || !LabelOK(v) {
			return nil, fmt.Errorf("label %q must be key=value, each of 1 to 100 letters, digits and . _ / -", kv)
		}
		if _, dup := labels[k]; dup {
			return nil, fmt.Errorf("label %q is given twice", k)
		}
		labels[k] = v
	}
	if len(labels) > MaxLabels {
		return nil, fmt.Errorf("at most %d labels, got %d", MaxLabels, len(labels))
	}
	return labels, nil
}

// FormatLabels is labels written k=v,… sorted by key ("" for none).
func FormatLabels(labels map[string]string) string {
	parts := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

// LabelsMatch reports whether a runner with labels have may take a job that asks for want:
// have holds every key of want with the same value. Every runner matches an empty want.
func LabelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}
