package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/flowd/flowd/internal/store"
)

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	Problems any    `json:"problems,omitempty"` // for invalid_pipeline and invalid_variables
}

// writeJSON sends v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		// Only a programming error gets here (a value JSON cannot hold).
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":"internal","message":"the server could not encode its answer"}}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writeError sends {"error":{"code","message"}}.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeProblems(w, status, code, message, nil)
}

// writeProblems sends an error with a list of problems.
func writeProblems(w http.ResponseWriter, status int, code, message string, problems any) {
	switch status {
	case http.StatusUnauthorized:
		if w.Header().Get("WWW-Authenticate") == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flowd"`)
		}
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: message, Problems: problems}})
}

func notFound(w http.ResponseWriter, message string) {
	writeError(w, http.StatusNotFound, "not_found", message)
}

func badRequest(w http.ResponseWriter, message string) {
	writeError(w, http.StatusBadRequest, "bad_request", message)
}

func forbidden(w http.ResponseWriter, message string) {
	writeError(w, http.StatusForbidden, "forbidden", message)
}

func conflict(w http.ResponseWriter, message string) {
	writeError(w, http.StatusConflict, "conflict", message)
}

// storeError answers a failed store call: ErrNotFound → 404 with notFoundMsg, ErrConflict →
// 409 with conflictMsg, ErrUnavailable → 503, anything else → 500, logged. The store's own
// text never reaches the caller.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error, notFoundMsg, conflictMsg string) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		if notFoundMsg == "" {
			notFoundMsg = "not found"
		}
		notFound(w, notFoundMsg)
	case errors.Is(err, store.ErrConflict):
		if conflictMsg == "" {
			conflictMsg = "the change conflicts with the current state; reload and try again"
		}
		conflict(w, conflictMsg)
	case errors.Is(err, store.ErrFull):
		s.logger().Error("api: the database or its disk is full", "method", r.Method, "path", logPath(r), "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable",
			"the server's database or its disk is full; nothing was saved — ask the operator to free space, then try again")
	case errors.Is(err, store.ErrUnavailable):
		s.logger().Warn("api: database unavailable", "method", r.Method, "path", logPath(r), "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable",
			"the database cannot be reached; nothing was saved — try again")
	default:
		s.internalError(w, r, err)
	}
}

// internalError logs err and answers 500 without its text. A request whose client went away
// is only logged at debug level.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		s.logger().Debug("api: request ended by the client", "method", r.Method, "path", logPath(r), "err", err)
		return
	}
	s.logger().Error("api: request failed", "method", r.Method, "path", logPath(r), "err", err)
	writeError(w, http.StatusInternalServerError, "internal",
		"the server failed to answer this request; it was logged — try again or tell the administrator")
}

// readBody reads the whole body; over the limit it answers 413 and returns false.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large",
				fmt.Sprintf("the body is over the limit of %d bytes (--max-body)", tooLarge.Limit))
			return nil, false
		}
		badRequest(w, "could not read the request body: "+err.Error())
		return nil, false
	}
	return b, true
}

// mediaType is the request's Content-Type without parameters, lower case; "" when absent.
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

// isJSON accepts no Content-Type, application/json and application/*+json.
func isJSON(mt string) bool {
	return mt == "" || mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// decodeJSON reads a JSON object body into dst, rejecting unknown fields and trailing data.
// An empty body leaves dst as it is when optional, else it is 400. It answers the error itself
// and returns false on any problem.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any, optional bool) bool {
	return decodeJSONHint(w, r, dst, optional, nil)
}

// decodeJSONHint is decodeJSON whose answer to a body that does not fit dst ends with
// hint(body) when hint is not nil.
func decodeJSONHint(w http.ResponseWriter, r *http.Request, dst any, optional bool, hint func(body []byte) string) bool {
	if mt := mediaType(r); !isJSON(mt) {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
			fmt.Sprintf("this endpoint takes JSON, not %s: send Content-Type: application/json", mt))
		return false
	}
	body, ok := readBody(w, r)
	if !ok {
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return true
		}
		writeError(w, http.StatusBadRequest, "invalid_json", "the body is empty; this endpoint takes a JSON object (see docs/api.md)")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		msg := "the body is not the JSON this endpoint takes: " + jsonProblem(err)
		if hint != nil {
			msg += hint(body)
		}
		writeError(w, http.StatusBadRequest, "invalid_json", msg)
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "invalid_json", "the body holds more than one JSON value")
		return false
	}
	return true
}

// jsonProblem describes a decoding error without Go type names.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at byte %d: %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must not be a JSON %s", typ.Field, typ.Value)
		}
		return fmt.Sprintf("expected a JSON object, got a JSON %s", typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends too early"
	}
	if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown field " + msg
	}
	return err.Error()
}
