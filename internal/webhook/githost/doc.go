// Package githost reads the webhook requests of Git hosts: it recognises the host by its
// headers (Detect), checks the request's secret or signature (Verify), turns push, tag-push,
// pull/merge-request and ping events into one Event (Parse), and decides whether an event
// starts a run of a pipeline's source (Match). It is pure: no I/O, no clock, no global state.
//
// Hosts and how they are told apart (Detect checks them in this order, since Gitea and Forgejo
// also send Gogs' and GitHub's headers, and Codeup sends GitLab-shaped bodies):
//
//	provider          event header                      delivery id          secret / signature
//	codeup            Codeup-Event (or X-Codeup-Event)  —                    X-Codeup-Token: <secret>
//	gitea (forgejo)   X-Gitea-Event / X-Forgejo-Event   X-Gitea-Delivery     X-Gitea-Signature / X-Forgejo-Signature: hex HMAC-SHA256
//	gogs              X-Gogs-Event                      X-Gogs-Delivery      X-Gogs-Signature: hex HMAC-SHA256
//	gitlab            X-Gitlab-Event                    X-Gitlab-Event-UUID  X-Gitlab-Token: <secret>
//	github            X-GitHub-Event                    X-GitHub-Delivery    X-Hub-Signature-256: sha256=<hex HMAC-SHA256>
//	bitbucket         X-Event-Key (repo:push, …)        X-Request-UUID       X-Hub-Signature: sha256=<hex HMAC-SHA256>
//	bitbucket-server  X-Event-Key (repo:refs_changed)   X-Request-Id         X-Hub-Signature: sha256=<hex HMAC-SHA256>
//
// Decisions this package makes where the hosts differ:
//
//   - One Event per request. Bitbucket Cloud and Server can report several refs in one push;
//     Parse reports the first change only (the other hosts send one request per ref).
//   - A push whose ref is under refs/tags/ is Kind tag on every host, whatever the host calls
//     the event. GitHub's and Gitea's separate "create"/"delete" events are Kind other, so a
//     tag push is never built twice.
//   - Commits are in the host's order (oldest first on GitHub, GitLab, Gitea and Gogs).
//     CommitsOmitted is set when the host never lists a push's commits (Bitbucket Server),
//     FilesOmitted when no listed commit carries added/modified/removed lists (Bitbucket Cloud
//     and Server, Codeup, Gogs), CommitsTruncated when the host says it listed only some of
//     the commits (GitLab's total_commits_count, Bitbucket Cloud's truncated).
//   - DeliveryID is the host's per-delivery id. Bitbucket Cloud's X-Hook-UUID names the
//     webhook, not the delivery, so it is never used: deduplicating on it would drop every
//     delivery after the first.
//   - Bitbucket Cloud payloads carry no clone URL, only the web link; Parse adds
//     https://bitbucket.org/<full_name>.git and git@bitbucket.org:<full_name>.git.
//   - For pull requests, Ref is the host's ref for the request's head (refs/pull/N/head on
//     GitHub, Gitea and Gogs, refs/merge-requests/N/head on GitLab and Codeup,
//     refs/pull-requests/N/from on Bitbucket Server, refs/heads/<source> on Bitbucket Cloud),
//     Branch the source branch and After the head commit. The repository is the target's.
//   - A body sent form-encoded (GitHub's, Gitea's and Gogs' "application/x-www-form-urlencoded"
//     option) is read from its payload field.
//
// Repository URLs are compared in NormalizeRepoURL's form (host/path), so https, ssh and
// scp-like URLs of one repository are the same repository; see Match for the run rules.
package githost
