package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/url"
	"strings"
)

// jsonSpace is JSON's whitespace (RFC 8259): space, tab, line feed, carriage return.
const jsonSpace = " \t\n\r"

// exampleObject is the body shape this endpoint wants, quoted in messages.
const exampleObject = `{"abc":"456"}`

// DecodePayload turns a webhook body into variable overrides: the body's top-level JSON object,
// each value kept as its raw JSON text (so 1.50 stays "1.50" and nested objects pass through
// untouched for package trigger to judge).
//
// The rules, in order:
//   - An empty body, or one of only JSON whitespace, gives an empty map whatever the
//     Content-Type: there is nothing to misread.
//   - Content-Type application/json, any type ending in +json (application/vnd.api+json), or
//     none at all: the body must be a JSON object. Parameters such as charset are ignored.
//   - application/x-www-form-urlencoded: with a `payload` field, GitHub's form encoding: the
//     first `payload` field holds the JSON, read by the same rules (an empty field gives an
//     empty map). Without one, the fields are the variables: GitLab's variables[NAME]=value
//     and plain NAME=value, each value a string (see decodeForm). Because
//     `curl --data '{"abc":"456"}'` sends this Content-Type by default, a body that is itself
//     valid JSON, or starts with '{' or '[', is read as JSON instead. A body that is not valid
//     form encoding is invalid_json.
//   - Any other media type, or a Content-Type that cannot be parsed: unsupported_media_type.
//   - Invalid JSON: invalid_json, the message giving the line, the column (in bytes, both
//     1-based) and the byte offset of the problem.
//   - Valid JSON that is not an object (array, string, number, boolean, null):
//     invalid_variables.
//
// When a key occurs twice the last value wins, as in encoding/json. Every error is an *Error.
// A nil error comes with a non-nil map. DecodePayload never panics.
func DecodePayload(contentType string, body []byte) (map[string]json.RawMessage, error) {
	if len(bytes.Trim(body, jsonSpace)) == 0 {
		return map[string]json.RawMessage{}, nil
	}
	mediaType, err := parseMediaType(contentType)
	if err != nil {
		return nil, err
	}
	switch {
	case mediaType == "", mediaType == "application/json", strings.HasSuffix(mediaType, "+json"):
		return decodeObject(body, "the body")
	case mediaType == "application/x-www-form-urlencoded":
		if looksLikeJSON(body) {
			return decodeObject(body, "the body")
		}
		return decodeForm(body)
	default:
		return nil, errorf(CodeUnsupportedMediaType,
			"Content-Type %s is not supported: send the variables as a JSON object such as %s with Content-Type: application/json (or application/x-www-form-urlencoded form fields such as abc=456, or GitHub's form encoding with the JSON in the payload field)",
			mediaType, exampleObject)
	}
}

// parseMediaType returns contentType's lowercased media type without parameters; "" when there
// is no Content-Type.
func parseMediaType(contentType string) (string, error) {
	if strings.TrimSpace(contentType) == "" {
		return "", nil
	}
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return "", errorf(CodeUnsupportedMediaType,
			"Content-Type %q cannot be read (%v): send the variables as a JSON object such as %s with Content-Type: application/json",
			contentType, err, exampleObject)
	}
	return mediaType, nil
}

// looksLikeJSON reports whether a body sent as form encoding is really JSON, as curl --data
// sends it: it is valid JSON or starts like an object or an array. A GitHub form body starts
// with "payload=", which is neither.
func looksLikeJSON(body []byte) bool {
	trimmed := bytes.TrimLeft(body, jsonSpace)
	return json.Valid(body) || (len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '['))
}

// decodeForm reads a form body: GitHub's form encoding when it has a payload field (the JSON
// is in that field), else the fields as variables: GitLab's variables[NAME]=value and plain
// NAME=value, each value a string (a NAME given both ways takes the variables[NAME] value; a
// field given twice, its last value, as a JSON key given twice).
func decodeForm(body []byte) (map[string]json.RawMessage, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errorf(CodeInvalidJSON,
			"the body is not valid form encoding (%v): send JSON such as %s with Content-Type: application/json, form fields such as abc=456 or variables[abc]=456, or GitHub's form encoding payload=<url-encoded JSON>", err, exampleObject)
	}
	if _, ok := form["payload"]; ok {
		payload := []byte(form.Get("payload"))
		if len(bytes.Trim(payload, jsonSpace)) == 0 {
			return map[string]json.RawMessage{}, nil
		}
		return decodeObject(payload, "the payload field")
	}
	out := make(map[string]json.RawMessage, len(form))
	var gitlab []string
	for key, values := range form {
		if name, ok := FormVariable(key); ok {
			gitlab = append(gitlab, name)
			continue
		}
		out[key] = stringJSON(values[len(values)-1])
	}
	for _, name := range gitlab {
		values := form["variables["+name+"]"]
		out[name] = stringJSON(values[len(values)-1])
	}
	return out, nil
}

// FormVariable reads a GitLab-style form field name variables[NAME]: NAME, true.
func FormVariable(key string) (string, bool) {
	inner, ok := strings.CutPrefix(key, "variables[")
	if !ok || !strings.HasSuffix(inner, "]") {
		return "", false
	}
	return strings.TrimSuffix(inner, "]"), true
}

// stringJSON is s as a JSON string (without HTML escapes: & stays &).
func stringJSON(s string) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// decodeObject decodes data, which must be one JSON object; what names data in messages.
func decodeObject(data []byte, what string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	err := json.Unmarshal(data, &m)
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		line, col := position(data, syntaxErr.Offset)
		return nil, errorf(CodeInvalidJSON,
			"%s is not valid JSON: %s at line %d, column %d (byte %d); send a JSON object such as %s",
			what, strings.TrimPrefix(syntaxErr.Error(), "json: "), line, col, syntaxErr.Offset, exampleObject)
	case errors.As(err, &typeErr), err == nil && m == nil:
		return nil, errorf(CodeInvalidVariables,
			"the body must be a JSON object of variable names to values, e.g. %s; %s is %s",
			exampleObject, what, kindOf(data))
	case err != nil:
		return nil, errorf(CodeInvalidJSON,
			"%s is not valid JSON (%v); send a JSON object such as %s", what, err, exampleObject)
	}
	return m, nil
}

// position returns the 1-based line and byte column of the byte at which encoding/json stopped:
// a SyntaxError's Offset counts the bytes read, the offending one included.
func position(data []byte, offset int64) (line, col int) {
	i := int(min(max(offset-1, 0), int64(len(data))))
	before := data[:i]
	line = 1 + bytes.Count(before, []byte{'\n'})
	col = i - bytes.LastIndexByte(before, '\n')
	return line, col
}

// kindOf names the kind of the valid JSON value data holds.
func kindOf(data []byte) string {
	trimmed := bytes.TrimLeft(data, jsonSpace)
	if len(trimmed) == 0 {
		return "empty"
	}
	switch trimmed[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}
