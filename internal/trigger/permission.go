package trigger

import (
	"context"
	"errors"
	"fmt"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
)

// ownerCheck is what the permission step found out about a trigger's owner.
type ownerCheck struct {
	User    store.User // the owner, when they still exist
	Role    auth.Role  // their effective role on the pipeline (global admins: admin)
	Problem string     // "" when the owner may run the pipeline; else what is wrong and the fix
}

// OwnerStatus says whether the owner of t (the user who last enabled it) may still start runs
// of its pipeline: they exist, are not disabled, and are a developer or higher on the pipeline
// or a global admin. When not, problem names the owner, says what they lack and what a
// pipeline admin must do. err is a store failure only.
func (w *Webhooks) OwnerStatus(ctx context.Context, t store.WebhookTrigger) (canRun bool, problem string, err error) {
	c, err := w.checkOwner(ctx, t)
	if err != nil {
		return false, "", err
	}
	return c.Problem == "", c.Problem, nil
}

func (w *Webhooks) checkOwner(ctx context.Context, t store.WebhookTrigger) (ownerCheck, error) {
	return checkRunner(ctx, w.Store, runner{
		what: "the webhook's owner", id: t.OwnerID, name: t.Owner, pipelineID: t.PipelineID, pipeline: t.Pipeline,
		fix: fmt.Sprintf("a pipeline admin must disable the webhook and enable it again as a user who may run %s", t.Pipeline),
	})
}

// runner is the user a trigger starts runs as: what they are to it ("the webhook's owner"),
// their id (0: deleted) and name, the pipeline, and what a pipeline admin must do when they
// may not run it.
type runner struct {
	what, name, pipeline, fix string
	id, pipelineID            int64
}

// ownerStore is what checkRunner reads.
type ownerStore interface {
	UserGetByID(ctx context.Context, id int64) (store.User, error)
	MemberRole(ctx context.Context, pipelineID, userID int64) (string, error)
}

// checkRunner says whether o may start runs of its pipeline: they exist, are not disabled, and
// are a developer or higher on the pipeline or a global admin. Problem names them, says what
// they lack and what to do. err is a store failure only.
func checkRunner(ctx context.Context, st ownerStore, o runner) (ownerCheck, error) {
	owner := o.name
	if owner == "" {
		owner = "(unknown)"
	}
	if o.id == 0 {
		return ownerCheck{Problem: fmt.Sprintf("%s %s was deleted; %s", o.what, owner, o.fix)}, nil
	}
	u, err := st.UserGetByID(ctx, o.id)
	if errors.Is(err, store.ErrNotFound) {
		return ownerCheck{Problem: fmt.Sprintf("%s %s was deleted; %s", o.what, owner, o.fix)}, nil
	}
	if err != nil {
		return ownerCheck{}, fmt.Errorf("trigger: %s of %s: %w", o.what, o.pipeline, err)
	}
	if u.Disabled {
		return ownerCheck{User: u, Problem: fmt.Sprintf("%s %s is disabled; %s", o.what, u.Username, o.fix)}, nil
	}
	if u.Admin {
		return ownerCheck{User: u, Role: auth.Admin}, nil
	}
	m, err := st.MemberRole(ctx, o.pipelineID, u.ID)
	if err != nil {
		return ownerCheck{}, fmt.Errorf("trigger: role of %s on %s: %w", o.what, o.pipeline, err)
	}
	if m == "" {
		return ownerCheck{User: u, Problem: fmt.Sprintf("%s %s is no longer a member of pipeline %s; %s", o.what, u.Username, o.pipeline, o.fix)}, nil
	}
	role, err := auth.ParseRole(m)
	if err != nil {
		return ownerCheck{}, fmt.Errorf("trigger: stored role of user %d on %s: %w", u.ID, o.pipeline, err)
	}
	if !role.AtLeast(auth.Developer) {
		return ownerCheck{User: u, Role: role, Problem: fmt.Sprintf("%s %s is only a %s of pipeline %s and may not start runs; %s", o.what, u.Username, role, o.pipeline, o.fix)}, nil
	}
	return ownerCheck{User: u, Role: role}, nil
}
