package api

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestNextPage(t *testing.T) {
	t.Parallel()
	id := func(n int) int64 { return int64(n) }
	tests := []struct {
		name       string
		items      []int
		limit, max int
		want       []int
		next       int64 // 0 = no next page
	}{
		{"fewer than asked", []int{9, 8}, 3, 200, []int{9, 8}, 0},
		{"exactly as asked", []int{9, 8, 7}, 3, 200, []int{9, 8, 7}, 0},
		{"one more than asked", []int{9, 8, 7, 6}, 3, 200, []int{9, 8, 7}, 7},
		{"full page at the largest page", []int{9, 8, 7}, 3, 3, []int{9, 8, 7}, 7},
		{"short page at the largest page", []int{9, 8}, 3, 3, []int{9, 8}, 0},
		{"empty", nil, 3, 200, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, next := nextPage(tt.items, tt.limit, tt.max, id)
			if !slices.Equal(got, tt.want) {
				t.Errorf("items = %v, want %v", got, tt.want)
			}
			switch {
			case tt.next == 0 && next != nil:
				t.Errorf("next = %d, want none", *next)
			case tt.next != 0 && (next == nil || *next != tt.next):
				t.Errorf("next = %v, want %d", next, tt.next)
			}
		})
	}
}

func TestQueryLimitAndBefore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query      string
		limit      int
		before     int64
		limitOK    bool
		beforeOK   bool
		limitBody  string
		beforeBody string
	}{
		{query: "", limit: 50, limitOK: true, beforeOK: true},
		{query: "limit=1&before=7", limit: 1, before: 7, limitOK: true, beforeOK: true},
		{query: "limit=200", limit: 200, limitOK: true, beforeOK: true},
		{query: "limit=201", beforeOK: true, limitBody: `limit=\"201\": use a number from 1 to 200`},
		{query: "limit=0", beforeOK: true, limitBody: `limit=\"0\": use a number from 1 to 200`},
		{query: "limit=x&before=0", beforeBody: `before=\"0\": use a run number (next_before of the previous page)`,
			limitBody: `limit=\"x\": use a number from 1 to 200`},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/?"+tt.query, nil)
			w := httptest.NewRecorder()
			limit, ok := queryLimit(w, r, 50, 200)
			if ok != tt.limitOK || limit != tt.limit {
				t.Errorf("queryLimit = %d, %v; want %d, %v", limit, ok, tt.limit, tt.limitOK)
			}
			checkAnswer(t, w, tt.limitOK, http.StatusBadRequest, tt.limitBody)
			w = httptest.NewRecorder()
			before, ok := queryBefore(w, r, "a run number")
			if ok != tt.beforeOK || before != tt.before {
				t.Errorf("queryBefore = %d, %v; want %d, %v", before, ok, tt.before, tt.beforeOK)
			}
			checkAnswer(t, w, tt.beforeOK, http.StatusBadRequest, tt.beforeBody)
		})
	}
}

func TestPathID(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		id   string
		want int64
		ok   bool
	}{{"1", 1, true}, {"42", 42, true}, {"0", 0, false}, {"-3", 0, false}, {"x", 0, false}} {
		r := httptest.NewRequest(http.MethodGet, "/runs/"+tt.id, nil)
		r.SetPathValue("id", tt.id)
		w := httptest.NewRecorder()
		got, ok := pathID(w, r, "run "+tt.id+" not found")
		if got != tt.want || ok != tt.ok {
			t.Errorf("pathID(%q) = %d, %v; want %d, %v", tt.id, got, ok, tt.want, tt.ok)
		}
		checkAnswer(t, w, tt.ok, http.StatusNotFound, "run "+tt.id+" not found")
	}
}

// checkAnswer checks that nothing was written when ok, else status and a body holding want.
func checkAnswer(t *testing.T, w *httptest.ResponseRecorder, ok bool, status int, want string) {
	t.Helper()
	if ok {
		if w.Body.Len() != 0 {
			t.Errorf("answered %d %s, want nothing", w.Code, w.Body)
		}
		return
	}
	if w.Code != status || !strings.Contains(w.Body.String(), want) {
		t.Errorf("answered %d %s, want %d with %s", w.Code, w.Body, status, want)
	}
}
