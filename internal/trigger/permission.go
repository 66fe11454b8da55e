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
	fix := fmt.Sprintf("a pipeline admin must disable the webhook and enable it again as a user who may run %s", t.Pipeline)
	owner := t.Owner
	if owner == "" {
		owner = "(unknown)"
	}
	if t.OwnerID == 0 {
		return ownerCheck{Problem: fmt.Sprintf("the webhook's owner %s was deleted; %s", owner, fix)}, nil
	}
	u, err := w.Store.UserGetByID(ctx, t.OwnerID)
	if errors.Is(err, store.ErrNotFound) {
		return ownerCheck{Problem: fmt.Sprintf("the webhook's owner %s was deleted; %s", owner, fix)}, nil
	}
	if err != nil {
		return ownerCheck{}, fmt.Errorf("trigger: webhook owner of %s: %w", t.Pipeline, err)
	}
	if u.Disabled {
		return ownerCheck{User: u, Problem: fmt.Sprintf("the webhook's owner %s is disabled; %s", u.Username, fix)}, nil
	}
	if u.Admin {
		return ownerCheck{User: u, Role: auth.Admin}, nil
	}
	m, err := w.Store.MemberRole(ctx, t.PipelineID, u.ID)
	if err != nil {
		return ownerCheck{}, fmt.Errorf("trigger: webhook owner's role on %s: %w", t.Pipeline, err)
	}
	if m == "" {
		return ownerCheck{User: u, Problem: fmt.Sprintf("the webhook's owner %s is no longer a member of pipeline %s; %s", u.Username, t.Pipeline, fix)}, nil
	}
	role, err := auth.ParseRole(m)
	if err != nil {
		return ownerCheck{}, fmt.Errorf("trigger: stored role of user %d on %s: %w", u.ID, t.Pipeline, err)
	}
	if !role.AtLeast(auth.Developer) {
		return ownerCheck{User: u, Role: role, Problem: fmt.Sprintf("the webhook's owner %s is only a %s of pipeline %s and may not start runs; %s", u.Username, role, t.Pipeline, fix)}, nil
	}
	return ownerCheck{User: u, Role: role}, nil
}
