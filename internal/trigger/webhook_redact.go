package trigger

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/webhook"
)

// secretNames are the names of def's secret variables.
func secretNames(def *pipeline.Pipeline) map[string]bool {
	out := map[string]bool{}
	for _, v := range def.Variables {
		if v.Secret {
			out[v.Name] = true
		}
	}
	return out
}

// RedactBody returns body with the values of the top-level keys in secret replaced by the JSON
// string "***": for a JSON object (also one cut at the size limit: a secret value the cut runs
// through is masked to the end), and for GitHub's form encoding, whose payload fields hold the
// JSON. The rest of a JSON body is kept byte for byte; a form body's payload field is encoded
// again. Keys are matched after JSON unescaping, every occurrence of a repeated key is masked,
// and any value (string, number, object, …) is replaced. A body without such keys, or that is
// neither, is returned as it is.
func RedactBody(body []byte, secret map[string]bool) []byte {
	if len(secret) == 0 || len(body) == 0 {
		return body
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		out, _ := redactObject(body, secret)
		return out
	}
	if !bytes.Contains(body, []byte("payload")) {
		return body
	}
	parts := bytes.Split(body, []byte("&"))
	changed := false
	for i, part := range parts {
		k, v, _ := bytes.Cut(part, []byte("="))
		key, err := url.QueryUnescape(string(k))
		if err != nil || key != "payload" {
			continue
		}
		val, ok := unescapeCut(string(v))
		if !ok {
			continue
		}
		if red, did := redactObject([]byte(val), secret); did {
			parts[i] = append(append(bytes.Clone(k), '='), url.QueryEscape(string(red))...)
			changed = true
		}
	}
	if !changed {
		return body
	}
	return bytes.Join(parts, []byte("&"))
}

// unescapeCut is url.QueryUnescape of a form value that may have been cut inside a %XX escape
// (a body at the size limit): the incomplete escape is dropped.
func unescapeCut(v string) (string, bool) {
	for drop := 0; drop <= 2 && drop <= len(v); drop++ {
		if s, err := url.QueryUnescape(v[:len(v)-drop]); err == nil {
			return s, true
		}
	}
	return "", false
}

// redactObject masks the values of data's top-level keys in secret; data is a JSON object,
// possibly cut short or broken: the scan stops at the first problem, and a secret value it runs
// into is masked to the end of data.
func redactObject(data []byte, secret map[string]bool) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return data, false
	}
	var out []byte
	last := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		key, ok := tok.(string)
		if !ok { // the closing brace
			break
		}
		start := int(dec.InputOffset())
		for start < len(data) && strings.IndexByte(" \t\r\n:", data[start]) >= 0 {
			start++
		}
		var raw json.RawMessage
		err = dec.Decode(&raw)
		end := int(dec.InputOffset())
		if !secret[key] {
			if err != nil {
				break
			}
			continue
		}
		if err != nil || end > len(data) {
			end = len(data)
		}
		out = append(out, data[last:start]...)
		out = append(out, `"***"`...)
		last = end
		if err != nil {
			break
		}
	}
	if out == nil {
		return data, false
	}
	return append(out, data[last:]...), true
}

// addSecret notes the value of a secret variable, to be masked in the trace and answers.
func (d *delivery) addSecret(v string) {
	if v == "" || v == pipeline.Masked || slices.Contains(d.secretVals, v) {
		return
	}
	d.secretVals = append(d.secretVals, v)
	// Longest first, so a secret that contains another is masked whole.
	slices.SortFunc(d.secretVals, func(a, b string) int { return len(b) - len(a) })
}

// mask returns s with every value of a secret variable the delivery has seen replaced by ***,
// also as it looks quoted (strconv.Quote, as messages quote values).
func (d *delivery) mask(s string) string {
	for _, v := range d.secretVals {
		s = strings.ReplaceAll(s, v, pipeline.Masked)
		if q := strconv.Quote(v); q[1:len(q)-1] != v {
			s = strings.ReplaceAll(s, q[1:len(q)-1], pipeline.Masked)
		}
	}
	return s
}

// outTrace is the trace as answered and stored: secret values masked; never nil.
func (d *delivery) outTrace() webhook.Trace {
	out := make(webhook.Trace, len(d.trace))
	for i, st := range d.trace {
		st.Detail = d.mask(st.Detail)
		out[i] = st
	}
	return out
}

// valueText is the variable value a JSON value of the body stands for: a string's text, else
// the JSON text (as pipeline.ResolveVariables reads it).
func valueText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// sortedKeys are m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
