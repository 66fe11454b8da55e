package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/flowd/flowd/internal/commitstatus"
	"io"
	"iter"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/flowd/flowd/internal/rules"
	"github.com/flowd/flowd/internal/run"
)

// maxNodes bounds the nodes Parse visits, so that aliases cannot blow a small document up into a
// huge plan.
const maxNodes = 100_000

// maxStepName is the length, in characters, of a step name derived from its run.
const maxStepName = 40

// Parse parses and validates src. On invalid input it returns a nil Pipeline and a *Error holding
// ALL problems found (not just the first); it never panics.
func Parse(src []byte) (*Pipeline, error) {
	doc, probs := decode(src)
	if len(probs) > 0 {
		return nil, newError(probs)
	}
	ps := &parser{budget: maxNodes, src: src}
	p := ps.pipeline(doc)
	if ps.exhausted {
		// Whatever else was found is noise from the walk being cut short.
		i := slices.IndexFunc(ps.problems, func(p Problem) bool { return strings.HasPrefix(p.Message, "definition is too large") })
		return nil, newError(ps.problems[i : i+1])
	}
	if len(ps.problems) > 0 {
		return nil, newError(ps.problems)
	}
	return p, nil
}

// newError returns an *Error with problems sorted by position.
func newError(probs []Problem) *Error {
	slices.SortStableFunc(probs, func(a, b Problem) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return &Error{Problems: probs}
}

// decode reads the one YAML document of src and returns its root node (a non-null, non-document
// node), or the problems that prevent it.
func decode(src []byte) (*yaml.Node, []Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, []Problem{{Message: "definition is empty"}}
		}
		return nil, []Problem{yamlProblem(src, err)}
	}
	var probs []Problem
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		probs = append(probs, Problem{Line: next.Line, Column: next.Column, Message: "only one YAML document is allowed"})
	case !errors.Is(err, io.EOF):
		probs = append(probs, yamlProblem(src, err))
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, append(probs, Problem{Message: "definition is empty"})
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.AliasNode && root.Alias != nil {
		root = root.Alias
	}
	switch {
	case isNull(root):
		probs = append(probs, Problem{Line: root.Line, Column: root.Column, Message: "definition is empty"})
	case root.Kind != yaml.MappingNode:
		probs = append(probs, Problem{Line: root.Line, Column: root.Column, Message: "definition must be a mapping, not " + kindName(root)})
	}
	return root, probs
}

// parser collects problems while it walks a document.
type parser struct {
	problems  []Problem
	budget    int
	exhausted bool
	src       []byte     // the definition, to place problems inside expressions
	lines     []string   // src split into lines, once needed
	rules     *rules.Env // once needed
	// The pipeline's image: its text, whether it is valid, whether it is given at all, and
	// where its value is (see containerOf).
	image               string
	imageOK, imageGiven bool
	imagePos            Position
	// runsOnDefault is the pipeline's runs-on, every job's unless it names a label itself.
	runsOnDefault map[string]string
}

// addf records a problem at n (which may be nil: position unknown). The message is "path: ...".
func (ps *parser) addf(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	p := Problem{Message: msg}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	ps.problems = append(ps.problems, p)
}

// node follows aliases and charges the visit to the budget; it returns nil once the budget is spent.
func (ps *parser) node(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return nil
	}
	if ps.budget--; ps.budget < 0 {
		if !ps.exhausted {
			ps.exhausted = true
			ps.addf(n, "", "definition is too large (more than %d nodes once aliases are expanded)", maxNodes)
		}
		return nil
	}
	return n
}

// isNull reports whether n is absent or a YAML null.
func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// kindName names the kind of n for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return "a value"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	return "an unknown node"
}

// field is one key and value of a mapping.
type field struct {
	name     string
	key, val *yaml.Node
	path     string
}

// join returns the path of key under parent.
func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// index returns the path of item i of the sequence at parent.
func index(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// mapping returns the fields of n, which must be a mapping (null gives no fields). Merge keys are
// expanded (explicit keys win). Keys must be strings and unique; when allowed is non-nil, every
// key must be one of it.
func (ps *parser) mapping(n *yaml.Node, at string, allowed []string) []field {
	n = ps.node(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		ps.addf(n, at, "must be a mapping, not %s", kindName(n))
		return nil
	}
	var fields, merged []field
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := ps.node(n.Content[i]), n.Content[i+1]
		if k == nil {
			return fields
		}
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, ps.merge(v, at, 0)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			ps.addf(k, at, "keys must be strings, not %s", kindName(k))
			continue
		}
		p := join(at, k.Value)
		if first, dup := seen[k.Value]; dup {
			ps.addf(k, p, "duplicate key (first at line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		if allowed != nil && !slices.Contains(allowed, k.Value) {
			if s := suggest(k.Value, allowed); s != "" {
				ps.addf(k, p, "unknown key (did you mean %q?)", s)
			} else {
				ps.addf(k, p, "unknown key (known keys: %s)", strings.Join(allowed, ", "))
			}
			continue
		}
		fields = append(fields, field{name: k.Value, key: k, val: v, path: p})
	}
	for _, f := range merged {
		if _, dup := seen[f.name]; dup {
			continue
		}
		seen[f.name] = f.key
		f.path = join(at, f.name)
		if allowed != nil && !slices.Contains(allowed, f.name) {
			ps.addf(f.key, f.path, "unknown key (merged)")
			continue
		}
		fields = append(fields, f)
	}
	return fields
}

// merge returns the fields of the value of a merge key: a mapping or a sequence of mappings.
func (ps *parser) merge(v *yaml.Node, at string, depth int) []field {
	v = ps.node(v)
	if v == nil {
		return nil
	}
	switch {
	case v.Kind == yaml.MappingNode:
		var out []field
		for i := 0; i+1 < len(v.Content); i += 2 {
			k := ps.node(v.Content[i])
			if k == nil {
				return out
			}
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				if depth < 10 {
					out = append(out, ps.merge(v.Content[i+1], at, depth+1)...)
				}
				continue
			}
			if k.Kind != yaml.ScalarNode {
				ps.addf(k, at, "keys must be strings, not %s", kindName(k))
				continue
			}
			if !slices.ContainsFunc(out, func(f field) bool { return f.name == k.Value }) {
				out = append(out, field{name: k.Value, key: k, val: v.Content[i+1]})
			}
		}
		return out
	case v.Kind == yaml.SequenceNode && depth == 0:
		var out []field
		for _, item := range v.Content {
			for _, f := range ps.merge(item, at, depth+1) {
				if !slices.ContainsFunc(out, func(g field) bool { return g.name == f.name }) {
					out = append(out, f)
				}
			}
		}
		return out
	}
	ps.addf(v, at, "a merge key (<<) takes a mapping or a sequence of mappings, not %s", kindName(v))
	return nil
}

// sequence returns the items of n, which must be a sequence (null gives none).
func (ps *parser) sequence(n *yaml.Node, at string) ([]*yaml.Node, bool) {
	n = ps.node(n)
	if isNull(n) {
		return nil, false
	}
	if n.Kind != yaml.SequenceNode {
		ps.addf(n, at, "must be a sequence, not %s", kindName(n))
		return nil, false
	}
	return n.Content, true
}

// str returns the text of the scalar n; null gives "". ok is false (and a problem recorded) when n
// is not a scalar.
func (ps *parser) str(n *yaml.Node, at string) (s string, ok bool) {
	n = ps.node(n)
	if isNull(n) {
		return "", n != nil || !ps.exhausted
	}
	if n.Kind != yaml.ScalarNode {
		ps.addf(n, at, "must be a string, not %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// requiredStr returns the text of the scalar value of g, recording "is required" at its key
// when that text is blank.
func (ps *parser) requiredStr(g field) string {
	s, ok := ps.str(g.val, g.path)
	if ok && strings.TrimSpace(s) == "" {
		ps.addf(g.key, g.path, "is required")
	}
	return s
}

// valueOrKey returns the node of f's value to place a problem at, or f's key when the value
// is null.
func (ps *parser) valueOrKey(f field) *yaml.Node {
	pos := ps.node(f.val)
	if isNull(pos) {
		pos = f.key
	}
	return pos
}

// strList returns the non-empty strings of the sequence n; nil when n is absent or null, non-nil
// (maybe empty) otherwise.
func (ps *parser) strList(n *yaml.Node, at string) []string {
	items, ok := ps.sequence(n, at)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(items))
	for i, item := range items {
		p := index(at, i)
		s, ok := ps.str(item, p)
		if !ok {
			continue
		}
		if s == "" {
			ps.addf(ps.node(item), p, "must not be empty")
			continue
		}
		out = append(out, s)
	}
	return out
}

// globs is strList for glob patterns, checking their syntax.
func (ps *parser) globs(n *yaml.Node, at string) []string {
	list := ps.strList(n, at)
	items, _ := ps.sequence(n, at)
	for i, g := range list {
		if _, err := path.Match(g, ""); err != nil {
			var pos *yaml.Node
			if len(items) == len(list) {
				pos = items[i]
			}
			ps.addf(pos, index(at, i), "invalid glob %q: %v", g, err)
		}
	}
	return list
}

var topKeys = []string{"name", "description", "image", "runs-on", "variables", "source", "webhook", "concurrency", "queue", "schedules", "notify", "stages"}

// pipeline walks the root mapping of a definition.
func (ps *parser) pipeline(root *yaml.Node) *Pipeline {
	p := &Pipeline{}
	fields := ps.mapping(root, "", topKeys)
	byName := map[string]field{}
	for _, f := range fields {
		byName[f.name] = f
	}
	if f, ok := byName["name"]; ok {
		name, ok := ps.str(f.val, f.path)
		switch {
		case !ok:
		case name == "":
			ps.addf(f.key, f.path, "is required")
		case !ValidName(name):
			ps.addf(f.val, f.path, "%q is not a valid pipeline name: use 1 to 63 lowercase letters, digits and '-', starting with a letter or digit", name)
		default:
			p.Name = name
		}
	} else {
		ps.addf(root, "name", "is required")
	}
	if f, ok := byName["description"]; ok {
		p.Description, _ = ps.str(f.val, f.path)
	}
	if f, ok := byName["variables"]; ok {
		p.Variables = ps.variables(f)
	}
	if f, ok := byName["source"]; ok {
		p.Source = ps.source(f, p)
	}
	if f, ok := byName["webhook"]; ok {
		p.Webhook = ps.webhook(f, p)
	}
	if f, ok := byName["schedules"]; ok {
		p.Schedules = ps.schedules(f, p)
	}
	if f, ok := byName["notify"]; ok {
		p.Notify = ps.notify(f, p)
	}
	if f, ok := byName["concurrency"]; ok {
		p.Concurrency = ps.concurrency(f)
	}
	if f, ok := byName["queue"]; ok {
		p.Queue = ps.queue(f)
	}
	if f, ok := byName["image"]; ok && !isNull(ps.node(f.val)) {
		ps.imageGiven = true
		ps.image, ps.imageOK = ps.imageRef(f)
		ps.imagePos = posOf(ps.valueOrKey(f))
		if ps.imageOK {
			p.Image = ps.image
		}
	}
	if f, ok := byName["runs-on"]; ok {
		p.RunsOn = ps.runsOn(f)
		ps.runsOnDefault = p.RunsOn
	}
	if f, ok := byName["stages"]; ok {
		p.Stages = ps.stages(f)
	} else {
		ps.addf(root, "stages", "at least one stage is required")
	}
	return p
}

var variableKeys = []string{"default", "options", "description", "secret"}

// variables walks the variables mapping.
func (ps *parser) variables(f field) []Variable {
	var vars []Variable
	for _, vf := range ps.mapping(f.val, f.path, nil) {
		v := Variable{Name: vf.name}
		ps.variableName(vf) // a bad name is reported; the rest of the variable is still checked
		val := ps.node(vf.val)
		switch {
		case val == nil:
		case val.Kind == yaml.ScalarNode:
			if !isNull(val) {
				v.Default = val.Value
			}
		case val.Kind == yaml.MappingNode:
			var defaultNode *yaml.Node
			hasDefault := false
			for _, g := range ps.mapping(val, vf.path, variableKeys) {
				switch g.name {
				case "default":
					defaultNode, hasDefault = g.val, true
					v.Default, _ = ps.str(g.val, g.path)
				case "description":
					v.Description, _ = ps.str(g.val, g.path)
				case "secret":
					v.Secret = ps.boolean(g.val, g.path)
				case "options":
					v.Options = ps.options(g)
				}
			}
			if len(v.Options) > 0 {
				switch {
				case !hasDefault:
					v.Default = v.Options[0]
				case v.Secret && v.Default == Masked: // "keep the stored value"
				case !slices.Contains(v.Options, v.Default):
					pos := ps.node(defaultNode)
					ps.addf(pos, join(vf.path, "default"), "%q is not one of the options (%s)", v.Default, strings.Join(v.Options, ", "))
				}
			}
		default:
			ps.addf(val, vf.path, "must be a value or a mapping with default, options, description and secret, not %s", kindName(val))
		}
		vars = append(vars, v)
	}
	return vars
}

// variableName reports whether the key of f may name a variable (or a job's environment
// variable), recording a problem when it may not.
func (ps *parser) variableName(f field) bool {
	switch {
	case Reserved(f.name):
		ps.addf(f.key, f.path, "reserved name: FLOWD_*, PATH and HOME are set by flowd")
		return false
	case !wellFormedVariableName(f.name):
		ps.addf(f.key, f.path, "invalid variable name: use letters, digits and '_', not starting with a digit")
		return false
	}
	return true
}

// options walks a variable's options list.
func (ps *parser) options(g field) []string {
	items, ok := ps.sequence(g.val, g.path)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		ps.addf(ps.node(g.val), g.path, "must list at least one value (omit it to allow any value)")
		return nil
	}
	var opts []string
	for i, item := range items {
		p := index(g.path, i)
		s, ok := ps.str(item, p)
		if !ok {
			continue
		}
		if slices.Contains(opts, s) {
			ps.addf(ps.node(item), p, "duplicate option %q", s)
			continue
		}
		opts = append(opts, s)
	}
	return opts
}

// boolean returns the value of a true/false scalar.
func (ps *parser) boolean(n *yaml.Node, at string) bool {
	n = ps.node(n)
	if n == nil {
		return false
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		b, err := strconv.ParseBool(strings.ToLower(n.Value))
		if err == nil {
			return b
		}
	}
	ps.addf(n, at, "must be true or false")
	return false
}

var sourceKeys = []string{"url", "branches", "tags", "paths", "events", "credentials",
	"status_token", "status_host", "status_api", "status_repo"}

// events are the Git events a source may list.
var events = []string{"push", "tag", "pull_request"}

// source walks the source mapping; nil when it is null.
func (ps *parser) source(f field, p *Pipeline) *Source {
	val := ps.node(f.val)
	if isNull(val) {
		return nil
	}
	s := &Source{}
	status, statusText := map[string]field{}, map[string]string{}
	fields := ps.mapping(val, f.path, sourceKeys)
	hasURL, hasEvents := false, false
	for _, g := range fields {
		switch g.name {
		case "url":
			hasURL = true
			s.URL = ps.requiredStr(g)
		case "branches":
			s.Branches = ps.globs(g.val, g.path)
		case "tags":
			s.Tags = ps.globs(g.val, g.path)
		case "paths":
			s.Paths = ps.globs(g.val, g.path)
		case "events":
			items, _ := ps.sequence(g.val, g.path)
			if isNull(ps.node(g.val)) {
				continue
			}
			hasEvents = true
			s.Events = []string{}
			for i, item := range items {
				ip := index(g.path, i)
				e, ok := ps.str(item, ip)
				switch {
				case !ok:
				case !slices.Contains(events, e):
					ps.addf(ps.node(item), ip, "unknown event %q: use push, tag or pull_request", e)
				case slices.Contains(s.Events, e):
					ps.addf(ps.node(item), ip, "duplicate event %q", e)
				default:
					s.Events = append(s.Events, e)
				}
			}
		case "credentials":
			s.Credentials = ps.secretVariable(g, p)
		case "status_token":
			s.StatusToken = ps.secretVariable(g, p)
			status[g.name] = g
		case "status_host", "status_api", "status_repo":
			v, _ := ps.str(g.val, g.path)
			status[g.name], statusText[g.name] = g, strings.TrimSpace(v)
		}
	}
	ps.commitStatus(s, status, statusText)
	if !hasURL && val.Kind == yaml.MappingNode {
		ps.addf(val, join(f.path, "url"), "is required")
	}
	if !hasEvents {
		s.Events = []string{"push", "tag"}
	}
	return s
}

// secretVariable reads g's value, the name of a declared secret variable ("" when empty).
func (ps *parser) secretVariable(g field, p *Pipeline) string {
	name, ok := ps.str(g.val, g.path)
	if !ok || name == "" {
		return ""
	}
	v, declared := p.Variable(name)
	switch {
	case !declared:
		ps.addf(ps.node(g.val), g.path, "%q is not a declared variable", name)
	case !v.Secret:
		ps.addf(ps.node(g.val), g.path, "variable %q must be secret (secret: true)", name)
	}
	return name
}

// commitStatus resolves where the source's commit statuses go (s.Status) when it has a
// status_token; the other status_ keys (given: the status keys present; text: their values)
// need one.
func (ps *parser) commitStatus(s *Source, given map[string]field, text map[string]string) {
	keys := []string{"status_host", "status_api", "status_repo"}
	if s.StatusToken == "" {
		for _, key := range keys {
			if text[key] != "" {
				ps.addf(ps.valueOrKey(given[key]), given[key].path,
					"has no effect without status_token: name the secret variable whose token reports commit statuses")
			}
		}
		return
	}
	if s.URL == "" {
		return // url is required, and said so
	}
	t, err := commitstatus.Resolve(s.URL, text["status_host"], text["status_api"], text["status_repo"])
	if err == nil {
		s.Status = &t
		return
	}
	// At the key the message starts with (which the path names, so the message drops it),
	// else at status_token.
	at, msg := given["status_token"], err.Error()
	for _, key := range keys {
		if rest, ok := strings.CutPrefix(msg, "source."+key); ok && text[key] != "" {
			at, msg = given[key], strings.TrimLeft(rest, ": ")
			break
		}
	}
	ps.addf(ps.valueOrKey(at), at.path, "%s", msg)
}

var webhookKeys = []string{"filter", "variables"}

// webhook walks the webhook mapping; nil when it is null.
func (ps *parser) webhook(f field, p *Pipeline) *Webhook {
	val := ps.node(f.val)
	if isNull(val) {
		return nil
	}
	w := &Webhook{}
	for _, g := range ps.mapping(val, f.path, webhookKeys) {
		switch g.name {
		case "filter":
			filter, ok := ps.str(g.val, g.path)
			if ok && filter != "" {
				ps.checkExpr(ps.node(g.val), g.path, filter, (*rules.Env).CheckFilter)
			}
			w.Filter = filter
		case "variables":
			for _, h := range ps.mapping(g.val, g.path, nil) {
				expr, ok := ps.str(h.val, h.path)
				if !ok {
					continue
				}
				if _, declared := p.Variable(h.name); !declared {
					ps.addf(h.key, h.path, "%q is not a declared variable: declare it under variables", h.name)
				}
				if strings.TrimSpace(expr) == "" {
					ps.addf(h.key, h.path, "expression is required")
				} else {
					ps.checkExpr(ps.node(h.val), h.path, expr, (*rules.Env).CheckValue)
				}
				w.Variables = append(w.Variables, WebhookVariable{Name: h.name, Expr: expr})
			}
		}
	}
	return w
}

var concurrencyKeys = []string{"group", "cancel_previous", "max_running"}

// concurrency walks the concurrency mapping; nil when it is null.
func (ps *parser) concurrency(f field) *Concurrency {
	val := ps.node(f.val)
	if isNull(val) {
		return nil
	}
	c := &Concurrency{}
	hasGroup := false
	for _, g := range ps.mapping(val, f.path, concurrencyKeys) {
		switch g.name {
		case "group":
			hasGroup = true
			c.Group = ps.requiredStr(g)
		case "cancel_previous":
			c.CancelPrevious = ps.boolean(g.val, g.path)
		case "max_running":
			n := ps.node(g.val)
			if n == nil {
				continue
			}
			v, err := strconv.Atoi(n.Value)
			switch {
			case n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || err != nil:
				ps.addf(n, g.path, "must be a whole number")
			case v < 0:
				ps.addf(n, g.path, "must be 0 (no limit) or more")
			default:
				c.MaxRunning = v
			}
		}
	}
	if !hasGroup && val.Kind == yaml.MappingNode {
		ps.addf(val, join(f.path, "group"), "is required")
	}
	return c
}

var queueKeys = []string{"max_runs", "max_seconds"}

// queue walks the queue mapping; nil when it is null.
func (ps *parser) queue(f field) *Queue {
	val := ps.node(f.val)
	if isNull(val) {
		return nil
	}
	q := &Queue{}
	for _, g := range ps.mapping(val, f.path, queueKeys) {
		switch g.name {
		case "max_runs":
			q.MaxRuns = ps.bound(g, "queued runs")
		case "max_seconds":
			q.MaxSeconds = ps.bound(g, "seconds of work")
		}
	}
	return q
}

// maxBound is the largest queue bound accepted: far above any queue a server holds.
const maxBound = 1_000_000_000

// bound reads a whole number of what, 0 (no bound) or more.
func (ps *parser) bound(g field, what string) int {
	n := ps.node(g.val)
	if n == nil || isNull(n) { // null counts as absent
		return 0
	}
	v, err := strconv.Atoi(n.Value)
	switch {
	case n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || err != nil:
		ps.addf(n, g.path, "must be a whole number of %s (0 = no bound), got %s", what, describe(n))
	case v < 0:
		ps.addf(n, g.path, "must be 0 (no bound) or more %s, got %d", what, v)
	case v > maxBound:
		ps.addf(n, g.path, "must be at most %d, got %d; use 0 for no bound", maxBound, v)
	default:
		return v
	}
	return 0
}

// describe is a node as a message shows it: a scalar's text, else its kind.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		return strconv.Quote(n.Value)
	}
	return kindName(n)
}

var (
	stageKeys = []string{"name", "jobs"}
	jobKeys   = []string{"name", "image", "container", "services", "runs-on", "timeout", "cancel_grace", "env", "retry", "steps"}
	stepKeys  = []string{"name", "run"}
)

// stages walks the stages sequence.
func (ps *parser) stages(f field) []Stage {
	var stages []Stage
	stageNames := map[string]int{}
	jobNames := map[string]int{}
	for at, n := range ps.mappingItems(f, "at least one stage is required") {
		st := Stage{}
		var nameField, jobsField *field
		fields := ps.mapping(n, at, stageKeys)
		for k := range fields {
			switch fields[k].name {
			case "name":
				nameField = &fields[k]
			case "jobs":
				jobsField = &fields[k]
			}
		}
		st.Name = ps.entityName(n, nameField, at, "stage", stageNames)
		if jobsField == nil {
			ps.addf(n, join(at, "jobs"), "at least one job is required")
		} else {
			st.Jobs = ps.jobs(*jobsField, jobNames)
		}
		stages = append(stages, st)
	}
	return stages
}

// mappingItems yields the path and node of each item of the sequence f that is a mapping,
// recording a problem for every other item, and msg when the sequence is empty or null. It
// stops once the node budget is spent.
func (ps *parser) mappingItems(f field, msg string) iter.Seq2[string, *yaml.Node] {
	return func(yield func(string, *yaml.Node) bool) {
		items, ok := ps.sequence(f.val, f.path)
		if len(items) == 0 {
			ps.requireItems(f, ok, msg)
			return
		}
		for i, item := range items {
			at := index(f.path, i)
			n := ps.node(item)
			if n == nil {
				return
			}
			if n.Kind != yaml.MappingNode {
				ps.addf(n, at, "must be a mapping, not %s", kindName(n))
				continue
			}
			if !yield(at, n) {
				return
			}
		}
	}
}

// requireItems reports msg for the empty or null sequence of f; isSeq tells whether f's value is a
// sequence (a value of another kind was reported already).
func (ps *parser) requireItems(f field, isSeq bool, msg string) {
	if ps.exhausted {
		return
	}
	pos := f.key
	if isSeq {
		pos = ps.node(f.val)
	} else if !isNull(ps.node(f.val)) {
		return
	}
	ps.addf(pos, f.path, "%s", msg)
}

// entityName reads the required name of a stage or job and checks it is unique in seen (name →
// line of first use).
func (ps *parser) entityName(n *yaml.Node, f *field, at, what string, seen map[string]int) string {
	if f == nil {
		ps.addf(n, join(at, "name"), "is required")
		return ""
	}
	name, ok := ps.str(f.val, f.path)
	if !ok {
		return ""
	}
	name = strings.TrimSpace(name)
	pos := ps.valueOrKey(*f)
	switch {
	case name == "":
		ps.addf(pos, f.path, "is required")
	case strings.ContainsAny(name, "\r\n"):
		ps.addf(pos, f.path, "must be a single line")
	default:
		if first, dup := seen[name]; dup {
			ps.addf(pos, f.path, "duplicate %s name %q (first at line %d)", what, name, first)
		} else if pos != nil {
			seen[name] = pos.Line
		}
	}
	return name
}

// jobs walks the jobs of a stage; seen holds the job names of the whole pipeline.
func (ps *parser) jobs(f field, seen map[string]int) []Job {
	var jobs []Job
	for at, n := range ps.mappingItems(f, "at least one job is required") {
		job := Job{Timeout: DefaultJobTimeout}
		var (
			nameField, stepsField, runsOnField *field
			jc                                 jobContainer
		)
		fields := ps.mapping(n, at, jobKeys)
		for k := range fields {
			g := &fields[k]
			switch g.name {
			case "name":
				nameField = g
			case "image":
				if !isNull(ps.node(g.val)) { // null counts as absent
					jc.image = g
				}
			case "container":
				jc.container = g
			case "services":
				jc.service = g
			case "steps":
				stepsField = g
			case "timeout":
				job.Timeout = ps.timeout(g)
			case "cancel_grace":
				job.CancelGrace = ps.cancelGrace(g)
			case "retry":
				job.RetryRunnerLost = ps.retry(g)
			case "runs-on":
				runsOnField = g
			case "env":
				for _, e := range ps.mapping(g.val, g.path, nil) {
					if !ps.variableName(e) {
						continue
					}
					v, ok := ps.str(e.val, e.path)
					if !ok {
						continue
					}
					if job.Env == nil {
						job.Env = map[string]string{}
					}
					job.Env[e.name] = v
				}
			}
		}
		job.Name = ps.entityName(n, nameField, at, "job", seen)
		job.Pos.Job = posOf(n)
		if nameField != nil {
			job.Pos.Job = posOf(ps.valueOrKey(*nameField))
		}
		job.Container = ps.containerOf(jc, &job.Pos)
		job.RunsOn = ps.jobRunsOn(runsOnField)
		if stepsField == nil {
			ps.addf(n, join(at, "steps"), "at least one step is required")
		} else {
			job.Steps = ps.steps(*stepsField)
		}
		jobs = append(jobs, job)
	}
	return jobs
}

// runsOn reads a runs-on mapping of label keys to values (run.LabelOK each, at most
// run.MaxLabels); nil when it is null or empty.
func (ps *parser) runsOn(f field) map[string]string {
	var labels map[string]string
	n := ps.node(f.val)
	if n != nil && n.Kind != yaml.MappingNode && !isNull(n) {
		ps.addf(n, f.path, "must be a mapping of labels such as {os: linux, gpu: \"true\"}, not %s", kindName(n))
		return nil
	}
	for _, g := range ps.mapping(f.val, f.path, nil) {
		if !run.LabelOK(g.name) {
			ps.addf(g.key, g.path, "%q is not a label: use 1 to 100 letters, digits and . _ / -", g.name)
			continue
		}
		v, ok := ps.str(g.val, g.path)
		if !ok {
			continue
		}
		if !run.LabelOK(v) {
			ps.addf(ps.valueOrKey(g), g.path, "%q is not a label value: use 1 to 100 letters, digits and . _ / -, such as \"true\" or linux", v)
			continue
		}
		if labels == nil {
			labels = map[string]string{}
		}
		labels[g.name] = v
	}
	if len(labels) > run.MaxLabels {
		ps.addf(ps.valueOrKey(f), f.path, "%d labels, at most %d", len(labels), run.MaxLabels)
	}
	return labels
}

// jobRunsOn is a job's runs-on: the pipeline's (ps.runsOnDefault) with the job's own runs-on
// (f, nil when absent) over it, key by key; nil when neither gives a label.
func (ps *parser) jobRunsOn(f *field) map[string]string {
	var own map[string]string
	if f != nil {
		own = ps.runsOn(*f)
	}
	if len(ps.runsOnDefault) == 0 {
		return own
	}
	labels := maps.Clone(ps.runsOnDefault)
	maps.Copy(labels, own)
	if f != nil && len(own) <= run.MaxLabels && len(labels) > run.MaxLabels {
		ps.addf(ps.valueOrKey(*f), f.path, "%d labels with the pipeline's runs-on, at most %d", len(labels), run.MaxLabels)
	}
	return labels
}

// retryKeys are the fields of a job's retry.
var retryKeys = []string{"when", "max"}

// retry reads a job's retry: {when: [runner_lost], max: N} and returns N. runner_lost is the
// only condition: a job whose step failed is not retried (run it again instead), since a
// step may have had effects; a job whose runner died never reported how it ended.
func (ps *parser) retry(g *field) int {
	var (
		n     int
		whens []string
		pos   = ps.valueOrKey(*g)
	)
	sawMax := false
	for _, f := range ps.mapping(g.val, g.path, retryKeys) {
		switch f.name {
		case "when":
			items, _ := ps.sequence(f.val, f.path)
			for i, item := range items {
				w, ok := ps.str(item, index(f.path, i))
				if !ok {
					continue
				}
				if w != "runner_lost" {
					ps.addf(ps.node(item), index(f.path, i), "unknown condition %q: the only one is runner_lost (the job's runner stopped renewing its lease: a server or agent died)", w)
				}
				whens = append(whens, w)
			}
		case "max":
			sawMax = true
			v, ok := ps.str(f.val, f.path)
			m, err := strconv.Atoi(strings.TrimSpace(v))
			if ok && (err != nil || m < 1 || m > MaxRetries) {
				ps.addf(ps.valueOrKey(f), f.path, "must be a whole number from 1 to %d, got %q", MaxRetries, v)
				continue
			}
			n = m
		}
	}
	if len(whens) == 0 {
		ps.addf(pos, g.path, "needs when: [runner_lost]")
		return 0
	}
	if !sawMax {
		ps.addf(pos, g.path, "needs max: how many more attempts (1 to %d)", MaxRetries)
	}
	return n
}

// timeout reads a job timeout.
func (ps *parser) timeout(g *field) time.Duration {
	s, ok := ps.str(g.val, g.path)
	if !ok {
		return DefaultJobTimeout
	}
	pos := ps.node(g.val)
	if isNull(pos) {
		return DefaultJobTimeout
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	switch {
	case err != nil:
		ps.addf(pos, g.path, "invalid duration %q: use a number and a unit, e.g. 90s, 10m or 1h30m", s)
	case d <= 0:
		ps.addf(pos, g.path, "must be more than 0")
	case d > MaxJobTimeout:
		ps.addf(pos, g.path, "must be at most 24h")
	default:
		return d
	}
	return DefaultJobTimeout
}

// cancelGrace reads a job's cancel_grace: a duration from 1s to MaxCancelGrace; 0 when
// omitted or wrong (a problem is added).
func (ps *parser) cancelGrace(g *field) time.Duration {
	s, ok := ps.str(g.val, g.path)
	pos := ps.node(g.val)
	if !ok || isNull(pos) {
		return 0
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	switch {
	case err != nil:
		ps.addf(pos, g.path, "invalid duration %q: use a number and a unit, e.g. 10s or 1m", s)
	case d < time.Second:
		ps.addf(pos, g.path, "must be at least 1s (the time a canceled step has between SIGTERM and SIGKILL)")
	case d > MaxCancelGrace:
		ps.addf(pos, g.path, "must be at most %s", MaxCancelGrace)
	default:
		return d
	}
	return 0
}

// steps walks the steps of a job.
func (ps *parser) steps(f field) []Step {
	var steps []Step
	for at, n := range ps.mappingItems(f, "at least one step is required") {
		var st Step
		hasRun := false
		for _, g := range ps.mapping(n, at, stepKeys) {
			switch g.name {
			case "name":
				name, _ := ps.str(g.val, g.path)
				st.Name = strings.TrimSpace(name)
				if strings.ContainsAny(st.Name, "\r\n") {
					ps.addf(ps.node(g.val), g.path, "must be a single line")
				}
			case "run":
				hasRun = true
				run, ok := ps.str(g.val, g.path)
				if ok && strings.TrimSpace(run) == "" {
					ps.addf(ps.valueOrKey(g), g.path, "is required")
				}
				st.Run = run
			}
		}
		if !hasRun {
			ps.addf(n, join(at, "run"), "is required")
		}
		if st.Name == "" {
			st.Name = stepName(st.Run)
		}
		steps = append(steps, st)
	}
	return steps
}

// stepName derives a step name from its script: the first non-blank line, trimmed and cut to
// maxStepName characters.
func stepName(run string) string {
	for line := range strings.Lines(run) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if utf8.RuneCountInString(line) > maxStepName {
			r := []rune(line)
			line = strings.TrimSpace(string(r[:maxStepName]))
		}
		return line
	}
	return ""
}

// suggest returns the entry of known closest to s when it is close enough to be a likely typo.
func suggest(s string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := distance(strings.ToLower(s), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if bestDist > len(best)/2 {
		return ""
	}
	return best
}

// distance is the Levenshtein distance between a and b (bytes).
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
