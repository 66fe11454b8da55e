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

// RedactBody returns body with the values of the variables in secret masked, as the delivery
// log keeps it; see RedactStored, of which it is the part without values to mask.
func RedactBody(body []byte, secret map[string]bool) []byte {
	return RedactStored(body, secret, nil)
}

// RedactStored returns body as the delivery log keeps it: the secret variables' values masked
// by key as the webhook decodes the body, and every string of values (the secret values the
// delivery saw, the trigger's token) masked wherever it appears. Masked values become "***".
//
// The body is read the way webhook.DecodePayload reads it, whatever its Content-Type said
// (a body that is not a JSON object is read as a form too, so no encoding slips through):
//   - A JSON object (also one cut at the size limit: a secret value the cut runs through is
//     masked to the end): the values of its top-level keys in secret (keys compared after JSON
//     unescaping, every repeat), then every string or number whose decoded text contains one
//     of values. Only the tokens that change are rewritten; the rest is kept byte for byte.
//   - A form body (fields split at "&", names and values URL-decoded as url.ParseQuery does):
//     a field naming a secret variable (NAME or GitLab's variables[NAME]) gets the value ***;
//     the JSON of a payload field (GitHub's form encoding) is masked as above; any decoded
//     name or value containing one of values has it masked. A field that changes is encoded
//     again (url.QueryEscape); the others are kept byte for byte. So pay%6Coad=… is masked
//     exactly as payload=… is.
//   - Last, each of values is masked in the raw bytes as they are, JSON-escaped and
//     URL-encoded, for bodies that are neither.
//
// values shorter than MinMaskLen are masked only by key, so a short secret cannot turn every
// stored body into asterisks.
func RedactStored(body []byte, secret map[string]bool, values []string) []byte {
	values = maskable(values)
	if len(body) == 0 || (len(secret) == 0 && len(values) == 0) {
		return body
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		out, _ := redactObject(body, secret)
		return maskRaw(maskJSONStrings(out, values), values)
	}
	return maskRaw(redactForm(body, secret, values), values)
}

// MinMaskLen is the shortest value RedactStored masks wherever it appears.
const MinMaskLen = 4

// maskable is values without the short ones and the mask itself, longest first, so a value
// that contains another is masked whole.
func maskable(values []string) []string {
	var out []string
	for _, v := range values {
		if len(v) >= MinMaskLen && v != pipeline.Masked && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// redactForm masks a form body field by field; see RedactStored.
func redactForm(body []byte, secret map[string]bool, values []string) []byte {
	parts := bytes.Split(body, []byte("&"))
	changed := false
	for i, part := range parts {
		k, v, hasValue := bytes.Cut(part, []byte("="))
		key, err := url.QueryUnescape(string(k))
		if err != nil {
			continue
		}
		val, ok := unescapeCut(string(v))
		if !ok {
			continue
		}
		newKey, newVal := maskText(key, values), val
		switch {
		case key == "payload":
			red, _ := redactObject([]byte(val), secret)
			newVal = string(maskJSONStrings(red, values))
		case secret[formVariable(key)]:
			newVal = pipeline.Masked
		default:
			newVal = maskText(val, values)
		}
		if newKey == key && newVal == val {
			continue
		}
		enc := k
		if newKey != key {
			enc = []byte(formEscape(newKey))
		}
		if hasValue || newVal != "" {
			enc = append(append(enc, '='), formEscape(newVal)...)
		}
		parts[i], changed = enc, true
	}
	if !changed {
		return body
	}
	return bytes.Join(parts, []byte("&"))
}

// formEscape is url.QueryEscape with "*" left as it is (it needs no escape), so *** reads.
func formEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "%2A", "*")
}

// formVariable is the variable a form field names: NAME for variables[NAME] (GitLab's form
// fields), else the field's name itself (webhook.DecodePayload reads both).
func formVariable(key string) string {
	if name, ok := webhook.FormVariable(key); ok {
		return name
	}
	return key
}

// maskText replaces every one of values in s by ***.
func maskText(s string, values []string) string {
	for _, v := range values {
		s = strings.ReplaceAll(s, v, pipeline.Masked)
	}
	return s
}

// maskJSONStrings rewrites the strings and numbers of the JSON text data whose decoded text
// contains one of values, as the JSON string of the masked text. data may be cut short or
// broken: the scan stops at the first problem (maskRaw covers the rest).
func maskJSONStrings(data []byte, values []string) []byte {
	if len(values) == 0 {
		return data
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out []byte
	last, prev := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		end := int(dec.InputOffset())
		var text string
		switch t := tok.(type) {
		case string:
			text = t
		case json.Number:
			text = string(t)
		default:
			prev = end
			continue
		}
		start := prev
		for start < end && strings.IndexByte(" \t\r\n,:", data[start]) >= 0 {
			start++
		}
		prev = end
		if masked := maskText(text, values); masked != text {
			out = append(out, data[last:start]...)
			out = append(out, mustJSON(masked)...)
			last = end
		}
	}
	if out == nil {
		return data
	}
	return append(out, data[last:]...)
}

// maskRaw replaces each of values in data as it is, JSON-escaped and URL-encoded.
func maskRaw(data []byte, values []string) []byte {
	for _, v := range values {
		q := string(mustJSON(v))
		for _, form := range []string{v, q[1 : len(q)-1], url.QueryEscape(v), url.PathEscape(v)} {
			if form != "" {
				data = bytes.ReplaceAll(data, []byte(form), []byte(pipeline.Masked))
			}
		}
	}
	return data
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
