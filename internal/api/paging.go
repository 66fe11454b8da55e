package api

import (
	"fmt"
	"net/http"
	"strconv"
)

// queryLimit reads ?limit= of a list: def when absent, else a number from 1 to maxPage; any
// other value is answered 400.
func queryLimit(w http.ResponseWriter, r *http.Request, def, maxPage int) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPage {
		badRequest(w, fmt.Sprintf("limit=%q: use a number from 1 to %d", v, maxPage))
		return 0, false
	}
	return n, true
}

// queryBefore reads ?before= of a list, the cursor of its next page: 0 when absent, else a
// positive number; any other value is answered 400 saying to use what (such as "a run number").
func queryBefore(w http.ResponseWriter, r *http.Request, what string) (int64, bool) {
	v := r.URL.Query().Get("before")
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		badRequest(w, fmt.Sprintf("before=%q: use %s (next_before of the previous page)", v, what))
		return 0, false
	}
	return n, true
}

// nextPage cuts items, a page read with one item more than limit (at most maxPage), to limit
// and returns the next page's cursor: cursor of its last item, nil when there is no next page.
// At maxPage the store cannot read one more, so a full page always offers a next one (which
// may be empty).
func nextPage[T any](items []T, limit, maxPage int, cursor func(T) int64) ([]T, *int64) {
	if len(items) > limit || (len(items) == maxPage && limit == maxPage) {
		items = items[:limit]
		c := cursor(items[limit-1])
		return items, &c
	}
	return items, nil
}

// pathID reads the path's {id}, a positive number; any other value is answered 404 with msg.
func pathID(w http.ResponseWriter, r *http.Request, msg string) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		notFound(w, msg)
		return 0, false
	}
	return id, true
}
