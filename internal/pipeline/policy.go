package pipeline

import (
	"fmt"
	"strconv"
)

// Policy is what a server allows of the pipelines saved on it, set by flowd serve's flags.
// Definitions are checked against it when they are saved (the API's create, update and
// validate), not when they parse: a stored definition stays readable whatever the server's
// flags become. The zero Policy allows everything: jobs on the host, and any CPUs and memory
// a container asks for.
type Policy struct {
	// RequireImage refuses a job with neither an image of its own nor the pipeline's, unless
	// DefaultImage is set (--allow-host-jobs=false).
	RequireImage bool
	// DefaultImage is the image a job without one runs in on this server ("" = none: such a
	// job runs on the host); with it, RequireImage refuses nothing.
	DefaultImage string
	// MaxCPUs and MaxMemory (bytes) are the most a job's container may ask for with
	// container: {cpus, memory} (--container-max-cpus, --container-max-memory); 0 = no bound.
	MaxCPUs   float64
	MaxMemory int64
}

// Check returns nil when p is allowed under pol, else an *Error with every job it refuses,
// each at the job's (or its setting's) line and column.
func (pol Policy) Check(p *Pipeline) error {
	var probs []Problem
	add := func(pos Position, format string, args ...any) {
		probs = append(probs, Problem{Line: pos.Line, Column: pos.Column, Message: fmt.Sprintf(format, args...)})
	}
	for _, st := range p.Stages {
		for _, j := range st.Jobs {
			c := j.Container
			if c == nil {
				if pol.RequireImage && pol.DefaultImage == "" {
					add(j.Pos.Job, "this server runs jobs only in containers (--allow-host-jobs=false): give job %q an image: (or the pipeline one), such as image: golang:1.26", j.Name)
				}
				continue
			}
			if pol.MaxCPUs > 0 && c.CPUs > pol.MaxCPUs {
				add(j.Pos.CPUs, "job %q: cpus %s is over this server's maximum of %s (--container-max-cpus)",
					j.Name, strconv.FormatFloat(c.CPUs, 'f', -1, 64), strconv.FormatFloat(pol.MaxCPUs, 'f', -1, 64))
			}
			if pol.MaxMemory > 0 && c.Memory > pol.MaxMemory {
				add(j.Pos.Memory, "job %q: memory %s is over this server's maximum of %s (--container-max-memory)",
					j.Name, FormatMemory(c.Memory), FormatMemory(pol.MaxMemory))
			}
		}
	}
	if len(probs) == 0 {
		return nil
	}
	return newError(probs)
}
