package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
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
// column of the character to fix.
func yamlProblem(src []byte, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		msg = m[2]
	}
	k := shortestFailing(src, err)
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
	at := failedToken(src[:k], msg)
	line, col := position(src, at)
	if opener, ok := unclosedOnItsLine(src, k, at); ok {
		ol, oc := position(src, opener)
		what := "the quoted string that starts here is not closed on its line"
		if c := src[opener]; c == '[' || c == '{' {
			what = "the '" + string(c) + "' here is not closed on its line"
		}
		return Problem{Line: ol, Column: oc, Message: fmt.Sprintf("invalid YAML: %s (so YAML fails later, at %d:%d: %s)", what, line, col, msg)}
	}
	if strings.HasPrefix(msg, "mapping values are not allowed") {
		if start, above, ok := continuedKey(src, at); ok {
			kl, kc := position(src, start)
			return Problem{Line: kl, Column: kc,
				Message: fmt.Sprintf("invalid YAML: %s (this line is indented more than line %d, so it continues line %d's value)", msg, above, above)}
		}
	}
	if msg == "did not find expected <document start>" && col == 1 {
		// The top level ended because this line is indented less than the document's first.
		var doc yaml.Node
		if yaml.Unmarshal(src[:at], &doc) == nil && len(doc.Content) > 0 && doc.Content[0].Column > 1 {
			return Problem{Line: doc.Content[0].Line, Column: 1, Message: fmt.Sprintf(
				"invalid YAML: the document's first line is indented, so the top level must be indented as much (so YAML fails later, at %d:%d: %s)", line, col, msg)}
		}
	}
	if _, opener := openConstructs(src[:k]); opener >= 0 && strings.Contains(msg, "',' or") {
		ol, oc := position(src, opener)
		msg += fmt.Sprintf(" (in the '%c' at %d:%d)", src[opener], ol, oc)
	}
	return Problem{Line: line, Column: col, Message: "invalid YAML: " + msg}
}

// shortestFailing returns the length of the shortest prefix of src that fails with err, the
// syntax error of src (len(src)+1 when only src itself fails, because it ends inside a quoted
// string or flow collection). The decoder reads the source front to back and fails at the first
// token it cannot accept, so that prefix ends inside that token. A prefix that fails only
// because it ends early, inside a quoted string or a flow collection, does not count.
func shortestFailing(src []byte, err error) int {
	want := err.Error()
	return sort.Search(len(src)+1, func(k int) bool {
		prefix := src[:k]
		e := yamlError(prefix)
		if e == nil || e.Error() != want {
			return false
		}
		closers, _ := openConstructs(prefix)
		if closers == "" {
			return true
		}
		// On a line of its own, so that a comment the prefix ends in does not hide it.
		return yamlError(slices.Concat(prefix, []byte("\n"+closers))) != nil
	})
}

// unclosedOnItsLine finds the quote or bracket a person forgot to close when the error of src
// is found at offset at, the shortest failing prefix being src[:k]: a quoted string that runs
// over several lines and ends before at (the first such one: every quote after it pairs up
// wrongly), or a flow collection open at the error, opened on an earlier line (the outermost
// first). It is the one to fix if closing it at the end of its own line makes src valid, or
// moves the first error past this one.
func unclosedOnItsLine(src []byte, k, at int) (int, bool) {
	errLine := bytes.Count(src[:at], []byte("\n"))
	var cands []int
	scanConstructs(src[:at], func(start, end int) {
		if len(cands) == 0 && bytes.IndexByte(src[start:end], '\n') >= 0 {
			cands = append(cands, start)
		}
	})
	_, open := scanConstructs(src[:k], nil)
	for _, opener := range open {
		if (src[opener] == '[' || src[opener] == '{') && bytes.Count(src[:opener], []byte("\n")) < errLine {
			cands = append(cands, opener)
		}
	}
	for i, opener := range cands {
		if i == 4 {
			break // each try reads the source some twenty times
		}
		closer := map[byte]byte{'"': '"', '\'': '\'', '[': ']', '{': '}'}[src[opener]]
		eol := opener + 1
		for eol < len(src) && src[eol] != '\n' {
			if closer != src[opener] && src[eol] == '#' && isBlank(src[eol-1]) {
				break // a comment after the collection
			}
			eol++
		}
		for eol > opener+1 && isBlank(src[eol-1]) {
			eol--
		}
		fixed := slices.Concat(src[:eol], []byte{closer}, src[eol:])
		e := yamlError(fixed)
		if e == nil || shortestFailing(fixed, e) > k+1 {
			return opener, true
		}
	}
	return 0, false
}

// continuedKey tells whether the ':' at offset at, which the YAML library did not accept,
// follows a key on a line that the library read as more of a plain value started on a line
// above (a key indented more than it should be). It returns the offset of that key and the
// line of the value it continues.
func continuedKey(src []byte, at int) (start, above int, ok bool) {
	var last *yaml.Node
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && (last == nil || n.Line > last.Line || n.Line == last.Line && n.Column > last.Column) {
			last = n
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	// Every document before at: the error may be in the second.
	dec := yaml.NewDecoder(bytes.NewReader(src[:at]))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return 0, 0, false
		}
		walk(&doc)
	}
	line, _ := position(src, at)
	if last == nil || last.Style != 0 || last.Line >= line {
		return 0, 0, false
	}
	start = bytes.LastIndexByte(src[:at], '\n') + 1
	for start < at && src[start] == ' ' {
		start++
	}
	return start, last.Line, true
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
	case strings.HasPrefix(msg, "found unexpected document indicator"):
		// A --- or ... at the start of a line inside a quoted string.
		at = bytes.LastIndexByte(prefix[:at], '\n') + 1
	case strings.HasPrefix(msg, "found duplicate %"):
		// The directive named, the second time.
		name := strings.Fields(strings.TrimPrefix(msg, "found duplicate "))[0]
		if i := bytes.LastIndex(prefix, []byte("\n"+name)); i >= 0 {
			at = i + 1
		}
	case msg == "found incompatible YAML document":
		// The version of the %YAML directive.
		if i := bytes.LastIndex(prefix, []byte("%YAML")); i >= 0 {
			at = i + len("%YAML")
			for at < len(prefix) && prefix[at] == ' ' {
				at++
			}
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
	closers, openers := scanConstructs(src, nil)
	if len(openers) == 0 {
		return "", -1
	}
	return closers, openers[len(openers)-1]
}

// scanConstructs is openConstructs that returns the offsets of all the openers still open,
// outermost first, and calls quoted, when it is not nil, with the offsets of the opening and
// closing quote of each quoted string it reads.
func scanConstructs(src []byte, quoted func(start, end int)) (closers string, openers []int) {
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
				if quoted != nil {
					quoted(stack[n-1].off, i)
				}
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
		return "", nil
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
	for _, o := range stack {
		openers = append(openers, o.off)
	}
	return b.String(), openers
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
