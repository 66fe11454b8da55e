package pipeline

import (
	"net/url"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Notify is one entry of notify: where to POST a signed JSON document when a run ends with
// one of the statuses in On.
type Notify struct {
	URL    string   // http or https, with a host
	On     []string // ended statuses that notify: success, failed, canceled (run statuses)
	Secret string   // the name of a declared secret variable whose value signs the body; "" = unsigned
}

// Wants reports whether a run that ended with status (a run status) notifies this target.
func (n Notify) Wants(status string) bool { return slices.Contains(n.On, status) }

var notifyKeys = []string{"url", "on", "secret"}

// notifyOn maps the words of on to run statuses; failed is an alias of failure, cancelled of
// canceled.
var notifyOn = map[string]string{
	"success": "success", "failure": "failed", "failed": "failed",
	"canceled": "canceled", "cancelled": "canceled",
}

// notifyOnDefault is what an entry without on notifies: every end, like a GitLab pipeline
// webhook; the receiver decides what matters.
var notifyOnDefault = []string{"success", "failed", "canceled"}

// maxNotify bounds a pipeline's notification targets.
const maxNotify = 10

// notify walks the notify sequence. Secrets must name declared secret variables.
func (ps *parser) notify(f field, p *Pipeline) []Notify {
	items, ok := ps.boundedSequence(f, maxNotify, "targets")
	if !ok {
		return nil
	}
	var out []Notify
	for i, item := range items {
		at := index(f.path, i)
		n := ps.node(item)
		if n == nil {
			continue
		}
		if n.Kind != yaml.MappingNode {
			ps.addf(n, at, "must be a mapping with url (and on, secret), not %s", kindName(n))
			continue
		}
		t := Notify{On: notifyOnDefault}
		good, hasURL := true, false
		for _, g := range ps.mapping(n, at, notifyKeys) {
			switch g.name {
			case "url":
				hasURL = true
				text := ps.requiredStr(g)
				if strings.TrimSpace(text) == "" {
					good = false
					continue
				}
				u, err := url.Parse(text)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					ps.addf(ps.valueOrKey(g), g.path, "%q is not an http or https URL, e.g. https://example.com/hooks/flowd", text)
					good = false
					continue
				}
				t.URL = text
			case "on":
				on, ok := ps.notifyStatuses(g)
				good = good && ok
				t.On = on
			case "secret":
				name, ok := ps.str(g.val, g.path)
				if !ok || name == "" {
					continue
				}
				v, declared := p.Variable(name)
				switch {
				case !declared:
					ps.addf(ps.valueOrKey(g), g.path, "%q is not a declared variable: declare it under variables with secret: true", name)
					good = false
				case !v.Secret:
					ps.addf(ps.valueOrKey(g), g.path, "%q is not secret: a signing key must be a variable with secret: true", name)
					good = false
				default:
					t.Secret = name
				}
			}
		}
		if !hasURL {
			ps.addf(n, join(at, "url"), "is required, e.g. url: https://example.com/hooks/flowd")
			good = false
		}
		if good {
			out = append(out, t)
		}
	}
	return out
}

// notifyStatuses reads on: a status or a list of them.
func (ps *parser) notifyStatuses(g field) ([]string, bool) {
	var words []string
	if n := ps.node(g.val); n != nil && n.Kind == yaml.ScalarNode && !isNull(n) {
		words = []string{n.Value}
	} else {
		words = ps.strList(g.val, g.path)
	}
	var out []string
	good := true
	for _, w := range words {
		s, known := notifyOn[w]
		if !known {
			ps.addf(ps.valueOrKey(g), g.path, "%q is not a run end: use success, failure or canceled", w)
			good = false
			continue
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if good && len(out) == 0 {
		ps.addf(ps.valueOrKey(g), g.path, "names no run end: use success, failure or canceled, or leave on out for all three")
		good = false
	}
	return out, good
}
