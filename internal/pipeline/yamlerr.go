package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// The YAML library reports a syntax error with one line only, and often the wrong one: a parser
// error names the line before the construct it was parsing (it counts from 0 there), not the
// token that broke it, and some errors (an unknown alias) have no position at all. yamlProblem
// finds the position itself: the decoder reads the source front to back and fails at the first
// token it cannot accept, so the shortest prefix of the source that fails with the same error
// ends at that token. A prefix can also fail only because it ends early — inside a quoted
// string or a flow collection — so a prefix counts only if it still fails once its open
// quotes and brackets are closed. When no prefix does, the source itself fails because a quote
// or bracket is never closed, and the problem is placed at that quote or bracket.

// yamlLine matches the position the YAML library puts in its messages.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError decodes src as decode does (one document, then a look for a second) and returns
// the first syntax error, or nil.
func yamlError(src []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	for range 2 {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
	return nil
}

// yamlProblem turns err, the syntax error of decoding src, into a Problem at the line and
// column of the token that caused it.
func yamlProblem(src []byte, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		msg = m[2]
	}
	want := err.Error()
	fails := func(k int) bool {
		prefix := src[:k]
		e := yamlError(prefix)
		if e == nil || e.Error() != want {
			return false
		}
		closers, _ := openConstructs(prefix)
		if closers == "" {
			return true
		}
		return yamlError(append(bytes.Clone(prefix), closers...)) != nil
	}
	// fails is false for the empty prefix and, but for an unclosed construct, true for src.
	k := sort.Search(len(src)+1, fails)
	if k > len(src) {
		if _, opener := openConstructs(src); opener >= 0 {
			line, col := position(src, opener)
			what := "the quoted string that starts here is never closed"
			if c := src[opener]; c == '[' || c == '{' {
				what = "the '" + string(c) + "' here is never closed"
			}
			return Problem{Line: line, Column: col, Message: "invalid YAML: " + msg + " (" + what + ")"}
		}
		return Problem{Line: 1, Column: 1, Message: "invalid YAML: " + msg}
	}
	line, col := position(src, failedToken(src[:k], msg))
	if _, opener := openConstructs(src[:k]); opener >= 0 && strings.Contains(msg, "',' or") {
		ol, oc := position(src, opener)
		msg += fmt.Sprintf(" (in the '%c' at %d:%d)", src[opener], ol, oc)
	}
	return Problem{Line: line, Column: col, Message: "invalid YAML: " + msg}
}

// failedToken returns the offset where the token that failed starts, given prefix, the shortest
// prefix of the source that fails. prefix ends inside that token: at its first character for
// most tokens; one character after it when the scanner had to look ahead; at the ':' of a key
// the parser did not expect; at the end of an alias (a shorter name is another name) or of an
// escape (`\q`).
func failedToken(prefix []byte, msg string) int {
	at := len(prefix) - 1
	for at > 0 && !utf8.RuneStart(prefix[at]) {
		at--
	}
	for at > 0 && isBlank(prefix[at]) && !isBlank(prefix[at-1]) {
		at--
	}
	switch {
	case strings.HasPrefix(msg, "unknown anchor"):
		if i := bytes.LastIndexByte(prefix, '*'); i >= 0 {
			at = i
		}
	case strings.Contains(msg, "escape"):
		if i := bytes.LastIndexByte(prefix, '\\'); i >= 0 {
			at = i
		}
	case prefix[at] == ':' && strings.HasPrefix(msg, "did not find expected"):
		// The key this ':' ends, which starts the line after its indentation and any "- ".
		i := bytes.LastIndexByte(prefix[:at], '\n') + 1
		for i < at && (prefix[i] == ' ' || prefix[i] == '-' && isBlank(prefix[i+1])) {
			i++
		}
		at = i
	}
	return at
}

// position is the 1-based line and column (in characters) of byte offset off of src.
func position(src []byte, off int) (line, col int) {
	before := src[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[start:]) + 1
}

// openConstructs reads src as far as it needs to tell which quoted strings and flow
// collections are still open at its end. It returns the characters that close them, innermost
// first, and the offset of the innermost opener (-1 when nothing is open). It knows just enough
// YAML for that: a quote or bracket opens something only where a value starts, comments and
// the bodies of block scalars (| and >) are skipped.
func openConstructs(src []byte) (closers string, opener int) {
	type open struct {
		c   byte // '[', '{', '"' or '\''
		off int
	}
	var (
		stack     []open
		lineStart = true // only indentation so far on this line
		valueNext = true // a value may start here
		indent    = 0    // of the current line
		blockAt   = -1   // indentation of the line that started a block scalar; -1 = none
	)
	for i := 0; i < len(src); i++ {
		c := src[i]
		if n := len(stack); n > 0 && (stack[n-1].c == '"' || stack[n-1].c == '\'') {
			switch {
			case c == '\\' && stack[n-1].c == '"':
				i++
			case c == '\'' && stack[n-1].c == '\'' && i+1 < len(src) && src[i+1] == '\'':
				i++
			case c == stack[n-1].c:
				stack = stack[:n-1]
				valueNext = false
			}
			continue
		}
		if lineStart {
			if c == ' ' {
				indent++
				continue
			}
			if c != '\n' && c != '\r' && c != '#' {
				lineStart = false
				if blockAt >= 0 && indent > blockAt {
					// A line of a block scalar's body: text, whatever it holds.
					for i < len(src) && src[i] != '\n' {
						i++
					}
					lineStart, indent = true, 0
					continue
				}
				blockAt = -1
				if len(stack) == 0 {
					valueNext = true
				}
			}
		}
		inFlow := len(stack) > 0
		switch {
		case c == '\n':
			lineStart, indent = true, 0
			if inFlow {
				valueNext = true
			}
		case c == ' ' || c == '\t' || c == '\r':
		case c == '#' && (i == 0 || isBlank(src[i-1])):
			for i+1 < len(src) && src[i+1] != '\n' {
				i++
			}
		case valueNext && (c == '"' || c == '\'' || c == '[' || c == '{'):
			stack = append(stack, open{c, i})
		case valueNext && (c == '|' || c == '>') && !inFlow:
			blockAt = indentOfLine(src, i)
			valueNext = false
		case inFlow && (c == ']' || c == '}'):
			stack = stack[:len(stack)-1]
			valueNext = false
		case inFlow && c == ',':
			valueNext = true
		case c == ':' && (i+1 == len(src) || isBlank(src[i+1]) || inFlow):
			valueNext = true
		case c == '-' && valueNext && (i+1 == len(src) || isBlank(src[i+1])):
		case (c == '&' || c == '!') && valueNext:
			// An anchor or a tag: its name, then still before the value.
			for i+1 < len(src) && !isBlank(src[i+1]) {
				i++
			}
		default:
			valueNext = false
		}
	}
	if len(stack) == 0 {
		return "", -1
	}
	var b strings.Builder
	for i := len(stack) - 1; i >= 0; i-- {
		switch stack[i].c {
		case '[':
			b.WriteByte(']')
		case '{':
			b.WriteByte('}')
		default:
			b.WriteByte(stack[i].c)
		}
	}
	return b.String(), stack[len(stack)-1].off
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// indentOfLine is the number of spaces that start the line holding offset off.
func indentOfLine(src []byte, off int) int {
	start := bytes.LastIndexByte(src[:off], '\n') + 1
	n := 0
	for start+n < len(src) && src[start+n] == ' ' {
		n++
	}
	return n
}
