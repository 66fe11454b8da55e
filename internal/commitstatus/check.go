package commitstatus

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"
)

// Error is a report the host did not accept.
type Error struct {
	Host    string // the kind that answered
	Code    int    // HTTP status
	Message string // the host's message from its error body, else the status text; never the token
	Retry   bool   // trying again may help: 5xx, 408, 429 and 409; other 4xx are final for this state
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s answered %d: %s", e.Host, e.Code, e.Message)
}

// maxMessage bounds the message kept from an error body.
const maxMessage = 500

// Check reads the host's answer to a report (status code and up to 64 KiB of body): nil when
// accepted (any 2xx, and GitLab's 400 "Cannot transition status", which says the status
// already has that state), else *Error.
func Check(t Target, code int, body []byte) error {
	if code >= 200 && code < 300 {
		return nil
	}
	msg := message(t.Host, body)
	if t.Host == GitLab && code == http.StatusBadRequest && strings.Contains(msg, "Cannot transition status") {
		return nil
	}
	if msg == "" {
		msg = http.StatusText(code)
	}
	if msg == "" {
		msg = "no message"
	}
	return &Error{
		Host:    t.Host,
		Code:    code,
		Message: shorten(strings.Join(strings.Fields(msg), " "), maxMessage),
		Retry:   code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code == http.StatusConflict,
	}
}

// message is the host's own words from its error body, "" when it has none.
func message(host string, body []byte) string {
	if !utf8.Valid(body) {
		return ""
	}
	var b errorBody
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	switch host {
	case GitHub:
		// {"message": "Validation Failed", "errors": [{"field": …, "message": …}], "documentation_url": …}
		return join(text(b.Message), b.itemMessages())
	case GitLab:
		// {"message": "404 Project Not Found"}, {"message": {"field": ["…"]}} or {"error": "state is missing"}
		return first(text(b.Message), text(b.Error))
	case Gitea:
		// {"message": …, "url": …}
		return text(b.Message)
	case Bitbucket:
		// {"type": "error", "error": {"message": …, "fields": …}}
		var e struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(b.Error, &e) == nil {
			return e.Message
		}
		return ""
	case BitbucketServer:
		// {"errors": [{"context": …, "message": …, "exceptionName": …}]}
		return b.itemMessages()
	case Codeup:
		// {"errorCode": "InvalidTokenError", "errorMessage": "Token is invalid"}
		return first(b.ErrorMessage, b.ErrorCode, text(b.Message))
	}
	return ""
}

// errorBody holds the fields the hosts' error bodies use.
type errorBody struct {
	Message      json.RawMessage `json:"message"`
	Error        json.RawMessage `json:"error"`
	Errors       json.RawMessage `json:"errors"`
	ErrorCode    string          `json:"errorCode"`
	ErrorMessage string          `json:"errorMessage"`
}

// itemMessages joins the messages of an errors array.
func (b errorBody) itemMessages() string {
	var items []struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b.Errors, &items) != nil {
		return ""
	}
	var msgs []string
	for _, it := range items {
		if it.Message != "" {
			msgs = append(msgs, it.Message)
		}
	}
	return strings.Join(msgs, "; ")
}

// text reads a message that is a string, or GitLab's field → messages object.
func text(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var fields map[string][]string
	if json.Unmarshal(raw, &fields) != nil {
		return ""
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	var parts []string
	for _, name := range names {
		parts = append(parts, name+" "+strings.Join(fields[name], ", "))
	}
	return strings.Join(parts, "; ")
}

func join(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + ": " + b
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
