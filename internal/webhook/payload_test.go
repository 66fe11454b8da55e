package webhook

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodePayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		contentType string
		body        string
		want        map[string]string // raw JSON text by key, when the call succeeds
		code        string
		message     []string // substrings the message must hold
	}{
		{name: "empty object", contentType: "application/json", body: `{}`, want: map[string]string{}},
		{name: "empty body", contentType: "application/json", body: ``, want: map[string]string{}},
		{name: "whitespace body", contentType: "application/json", body: " \t\r\n ", want: map[string]string{}},
		{name: "empty body any type", contentType: "text/plain", body: ``, want: map[string]string{}},
		{name: "no content type", body: `{"abc":"456"}`, want: map[string]string{"abc": `"456"`}},
		{name: "variables", contentType: "application/json", body: `{"abc":"456"}`, want: map[string]string{"abc": `"456"`}},
		{name: "charset", contentType: "application/json; charset=utf-8", body: `{"abc":"456"}`, want: map[string]string{"abc": `"456"`}},
		{name: "upper case type", contentType: "Application/JSON", body: `{"a":1}`, want: map[string]string{"a": `1`}},
		{name: "plus json", contentType: "application/vnd.api+json", body: `{"a":true}`, want: map[string]string{"a": `true`}},
		{name: "number kept as text", contentType: "application/json", body: `{"n":1.50,"e":1e3,"b":false}`, want: map[string]string{"n": `1.50`, "e": `1e3`, "b": `false`}},
		{name: "nested passed through", contentType: "application/json", body: `{"o":{"x":[1, 2]},"a":[null],"z":null}`, want: map[string]string{"o": `{"x":[1, 2]}`, "a": `[null]`, "z": `null`}},
		{name: "duplicate key last wins", contentType: "application/json", body: `{"a":"1","a":"2"}`, want: map[string]string{"a": `"2"`}},
		{name: "surrounding whitespace", contentType: "application/json", body: "\n {\"a\":\"b\"} \n", want: map[string]string{"a": `"b"`}},
		{name: "github form", contentType: "application/x-www-form-urlencoded", body: `payload=%7B%22abc%22%3A%22x%22%7D`, want: map[string]string{"abc": `"x"`}},
		{name: "github form with other fields", contentType: "application/x-www-form-urlencoded", body: `x=1&payload=%7B%22a%22%3A2%7D`, want: map[string]string{"a": `2`}},
		{name: "form empty payload", contentType: "application/x-www-form-urlencoded", body: `payload=`, want: map[string]string{}},
		{name: "curl --data object", contentType: "application/x-www-form-urlencoded", body: `{"abc":"456"}`, want: map[string]string{"abc": `"456"`}},
		{name: "curl --data empty object", contentType: "application/x-www-form-urlencoded", body: `{}`, want: map[string]string{}},

		{name: "array", contentType: "application/json", body: `[1,2]`, code: "invalid_variables",
			message: []string{`the body must be a JSON object of variable names to values, e.g. {"abc":"456"}`, "an array"}},
		{name: "string", contentType: "application/json", body: `"abc"`, code: "invalid_variables", message: []string{"a string"}},
		{name: "number", contentType: "application/json", body: `12`, code: "invalid_variables", message: []string{"a number"}},
		{name: "boolean", contentType: "application/json", body: `true`, code: "invalid_variables", message: []string{"a boolean"}},
		{name: "null", contentType: "application/json", body: ` null `, code: "invalid_variables", message: []string{"null"}},
		{name: "form payload array", contentType: "application/x-www-form-urlencoded", body: `payload=%5B%5D`, code: "invalid_variables", message: []string{"the payload field is an array"}},
		{name: "curl --data array", contentType: "application/x-www-form-urlencoded", body: `[1]`, code: "invalid_variables"},
		{name: "curl --data number", contentType: "application/x-www-form-urlencoded", body: `12`, code: "invalid_variables"},

		{name: "bad json", contentType: "application/json", body: `{"a":}`, code: "invalid_json",
			message: []string{"not valid JSON", "line 1, column 6 (byte 6)"}},
		{name: "bad json second line", contentType: "application/json", body: "{\n  \"a\": 1,\n  \"b\" 2\n}", code: "invalid_json",
			message: []string{"line 3, column 7"}},
		{name: "truncated", contentType: "application/json", body: `{"a":"b"`, code: "invalid_json", message: []string{"line 1", "byte 8"}},
		{name: "trailing data", contentType: "application/json", body: `{} {}`, code: "invalid_json", message: []string{"column 4"}},
		{name: "not json at all", body: `abc=1`, code: "invalid_json"},
		{name: "curl --data bad object", contentType: "application/x-www-form-urlencoded", body: `{abc:1}`, code: "invalid_json", message: []string{"column 2"}},
		{name: "form fields are variables", contentType: "application/x-www-form-urlencoded", body: `abc=456&TARGET=production`, want: map[string]string{"abc": `"456"`, "TARGET": `"production"`}},
		{name: "GitLab-style form fields", contentType: "application/x-www-form-urlencoded", body: `variables[abc]=456&variables%5BX%5D=a+b%26c`, want: map[string]string{"abc": `"456"`, "X": `"a b&c"`}},
		{name: "variables[NAME] wins over NAME", contentType: "application/x-www-form-urlencoded", body: `variables[abc]=1&abc=2`, want: map[string]string{"abc": `"1"`}},
		{name: "a repeated field: the last value", contentType: "application/x-www-form-urlencoded", body: `abc=1&abc=2`, want: map[string]string{"abc": `"2"`}},
		{name: "an encoded payload name is the payload", contentType: "application/x-www-form-urlencoded", body: `pay%6Coad=%7B%22abc%22%3A%22x%22%7D`, want: map[string]string{"abc": `"x"`}},
		{name: "form bad escape", contentType: "application/x-www-form-urlencoded", body: `payload=%zz`, code: "invalid_json", message: []string{"not valid form encoding"}},
		{name: "form payload bad json", contentType: "application/x-www-form-urlencoded", body: `payload=%7B`, code: "invalid_json", message: []string{"the payload field is not valid JSON"}},

		{name: "text plain", contentType: "text/plain", body: `{"a":"b"}`, code: "unsupported_media_type",
			message: []string{"text/plain", "Content-Type: application/json"}},
		{name: "multipart", contentType: "multipart/form-data; boundary=x", body: `--x--`, code: "unsupported_media_type", message: []string{"multipart/form-data"}},
		{name: "unparseable type", contentType: "/", body: `{}`, code: "unsupported_media_type", message: []string{"cannot be read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodePayload(tt.contentType, []byte(tt.body))
			if tt.want != nil {
				if err != nil {
					t.Fatalf("DecodePayload(%q, %q) = %v, want success", tt.contentType, tt.body, err)
				}
				if got == nil {
					t.Fatal("map is nil")
				}
				raw := make(map[string]string, len(got))
				for k, v := range got {
					raw[k] = string(v)
				}
				if !equalMaps(raw, tt.want) {
					t.Errorf("DecodePayload(%q, %q) = %v, want %v", tt.contentType, tt.body, raw, tt.want)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("DecodePayload(%q, %q) = %v, %v; want an *Error", tt.contentType, tt.body, got, err)
			}
			if got != nil {
				t.Errorf("map = %v with an error, want nil", got)
			}
			if e.Code != tt.code {
				t.Errorf("error = %s (%s), want %s", e.Code, e.Message, tt.code)
			}
			for _, s := range tt.message {
				if !strings.Contains(e.Message, s) {
					t.Errorf("message %q does not contain %q", e.Message, s)
				}
			}
			if e.Error() != e.Code+": "+e.Message {
				t.Errorf("Error() = %q", e.Error())
			}
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// FuzzDecodePayload checks that DecodePayload never panics, that success means a non-nil map of
// valid JSON values, and that failure is an *Error with one of its statuses.
func FuzzDecodePayload(f *testing.F) {
	seeds := []struct{ contentType, body string }{
		{"application/json", `{}`},
		{"application/json", `{"abc":"456"}`},
		{"application/json; charset=utf-8", `{"n":1.50,"o":{"x":[1,2,{"y":null}]}}`},
		{"", `[1,2,3]`},
		{"", `null`},
		{"application/json", `{"a":}`},
		{"application/json", "{\"a\":\"\xff\xfe\"}"},
		{"application/x-www-form-urlencoded", `payload=%7B%22abc%22%3A%22x%22%7D`},
		{"application/x-www-form-urlencoded", `payload=%zz&payload=1`},
		{"application/x-www-form-urlencoded", `{"abc":"456"}`},
		{"text/plain", `{}`},
		{"application/vnd.api+json", " \n"},
		{"application/json;;", `{"a":1}`},
	}
	for _, s := range seeds {
		f.Add(s.contentType, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		got, err := DecodePayload(contentType, body)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			switch e.Code {
			case CodeInvalidJSON, CodeUnsupportedMediaType, CodeInvalidVariables:
			default:
				t.Fatalf("code %q (%v)", e.Code, e)
			}
			if e.Code == "" || e.Message == "" {
				t.Fatalf("error without code or message: %#v", e)
			}
			if got != nil {
				t.Fatalf("map %v with error %v", got, err)
			}
			return
		}
		if got == nil {
			t.Fatal("nil map with nil error")
		}
		for k, v := range got {
			if !json.Valid(v) {
				t.Fatalf("value of %q is not valid JSON: %q", k, v)
			}
		}
	})
}
