package trigger

import (
	"bytes"
	"container/list"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// maxCachedPlans bounds the plan cache: the pipelines that received deliveries lately.
const maxCachedPlans = 64

// plan is what a stored pipeline revision gives every run of it, worked out once: the parsed
// definition, and (once Build has needed them) the definition with its secrets filled in, the
// names of its secret variables and its planned jobs. A plan is never changed once cached;
// callers copy what they hand on.
type plan struct {
	source string             // the YAML it was parsed from
	def    *pipeline.Pipeline // pipeline.Parse(source)
	// With secrets: made from the sealed secrets in sealed (nil def: not made yet).
	sealed     []byte
	withSecret *pipeline.Pipeline
	isSecret   map[string]bool
	jobs       []run.Job
}

type planKey struct{ pipelineID, revision int64 }

// planCache is a small LRU of plans by pipeline id and revision. An entry serves only a
// pipeline whose source (and, for the secret half, sealed secrets) are byte for byte those it
// was made from, so a new revision, an edited secret or another store's pipeline with the same
// id never gets a stale plan. The zero value is ready to use.
type planCache struct {
	mu    sync.Mutex
	order *list.List // of *planItem, most recently used first
	items map[planKey]*list.Element
}

type planItem struct {
	key  planKey
	plan *plan
}

func (c *planCache) get(k planKey) *plan {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*planItem).plan
}

func (c *planCache) put(k planKey, p *plan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items, c.order = map[planKey]*list.Element{}, list.New()
	}
	if e, ok := c.items[k]; ok {
		e.Value.(*planItem).plan = p
		c.order.MoveToFront(e)
		return
	}
	c.items[k] = c.order.PushFront(&planItem{key: k, plan: p})
	for c.order.Len() > maxCachedPlans {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*planItem).key)
	}
}

// parsed returns p's parsed definition (cached by id and revision). The definition is shared:
// callers must not change it.
func (s *Service) parsed(p store.Pipeline) (*pipeline.Pipeline, error) {
	k := planKey{p.ID, p.Revision}
	if pl := s.plans.get(k); pl != nil && pl.source == p.Source {
		return pl.def, nil
	}
	def, err := pipeline.Parse([]byte(p.Source))
	if err != nil {
		// The store only holds definitions that parsed when they were saved.
		return nil, fmt.Errorf("trigger: pipeline %s revision %d does not parse: %w", p.Name, p.Revision, err)
	}
	s.plans.put(k, &plan{source: p.Source, def: def})
	return def, nil
}

// planned returns p's plan with its secret half made, from the cache when p's source and
// sealed secrets are those it was made from.
func (s *Service) planned(p store.Pipeline) (*plan, error) {
	k := planKey{p.ID, p.Revision}
	cached := s.plans.get(k)
	if cached != nil && cached.source == p.Source && cached.withSecret != nil && bytes.Equal(cached.sealed, p.Secrets) {
		return cached, nil
	}
	secrets, err := OpenSecrets(s.Box, p.Secrets)
	if err != nil {
		return nil, fmt.Errorf("trigger: pipeline %s: %w", p.Name, err)
	}
	var def *pipeline.Pipeline
	if cached != nil && cached.source == p.Source {
		def = cached.def
	} else if def, err = pipeline.Parse([]byte(p.Source)); err != nil {
		return nil, fmt.Errorf("trigger: pipeline %s revision %d does not parse: %w", p.Name, p.Revision, err)
	}
	withSecret := def.WithSecrets(secrets)
	isSecret := map[string]bool{}
	for _, v := range withSecret.Variables {
		if v.Secret {
			isSecret[v.Name] = true
		}
	}
	pl := &plan{source: p.Source, def: def, sealed: bytes.Clone(p.Secrets), withSecret: withSecret,
		isSecret: isSecret, jobs: Plan(withSecret)}
	s.plans.put(k, pl)
	return pl, nil
}

// copyJobs is a copy of jobs a caller may change (the Env and RunsOn maps and Containers are
// the plan's, shared: they are not changed).
func copyJobs(jobs []run.Job) []run.Job {
	if jobs == nil {
		return nil
	}
	out := slices.Clone(jobs)
	for i := range out {
		out[i].Steps = slices.Clone(out[i].Steps)
	}
	return out
}

// copySet is a copy of a set of names.
func copySet(m map[string]bool) map[string]bool { return maps.Clone(m) }
