package pipeline

import (
	"bytes"
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Masked is the value that stands for a secret in a masked definition. A definition whose secret
// default is Masked means "keep the stored value".
const Masked = "***"

// MaskSecrets returns src with the default value of every secret variable replaced by "***"
// (re-serialised through yaml.Node so comments and order survive) and the secret values by name.
// A secret whose value is already "***" is not returned (it means "keep the stored value"); a
// secret with an empty or omitted default is returned as "" (the text keeps the empty value).
//
// src must be a valid definition: otherwise MaskSecrets returns Parse's *Error. The output is
// re-indented by the YAML encoder (two spaces), so it is equivalent to src but not byte-identical.
// Only the default itself is masked: the same text written elsewhere (say, in a run script) stays.
func MaskSecrets(src []byte) (masked []byte, secrets map[string]string, err error) {
	p, err := Parse(src)
	if err != nil {
		return nil, nil, err
	}
	secrets = map[string]string{}
	for _, v := range p.Variables {
		if v.Secret && v.Default != Masked {
			secrets[v.Name] = v.Default
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, nil, fmt.Errorf("pipeline: mask secrets: %w", err)
	}
	ps := &parser{budget: maxNodes}
	root := doc.Content[0]
	for _, f := range ps.mapping(root, "", topKeys) {
		if f.name != "variables" {
			continue
		}
		for _, vf := range ps.mapping(f.val, f.path, nil) {
			if _, secret := secrets[vf.name]; !secret {
				continue
			}
			for _, g := range ps.mapping(vf.val, vf.path, variableKeys) {
				if g.name != "default" {
					continue
				}
				n := ps.node(g.val)
				if n == nil || n.Kind != yaml.ScalarNode || isNull(n) || n.Value == "" {
					continue
				}
				n.Value, n.Tag, n.Style = Masked, "!!str", yaml.DoubleQuotedStyle
			}
		}
	}
	if len(ps.problems) > 0 {
		return nil, nil, errors.New("pipeline: mask secrets: definition changed while masking")
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, nil, fmt.Errorf("pipeline: mask secrets: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, nil, fmt.Errorf("pipeline: mask secrets: %w", err)
	}
	return buf.Bytes(), secrets, nil
}

// WithSecrets returns a copy of p whose secret variables' defaults come from secrets (by name);
// secret variables absent from the map keep the default they have. p is not changed.
func (p *Pipeline) WithSecrets(secrets map[string]string) *Pipeline {
	c := p.clone()
	for i, v := range c.Variables {
		if !v.Secret {
			continue
		}
		if s, ok := secrets[v.Name]; ok {
			c.Variables[i].Default = s
		}
	}
	return c
}
