package pipeline

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/flowd/flowd/internal/rules"
)

// checkExpr checks the CEL expression expr, the value of the scalar n at path, with check (one of
// the rules.Env checks) and reports its error at the YAML position of the offending character.
func (ps *parser) checkExpr(n *yaml.Node, at, expr string, check func(*rules.Env, string) error) {
	if ps.rules == nil {
		env, err := rules.NewEnv()
		if err != nil {
			ps.addf(n, at, "cannot check the expression: %v", err)
			return
		}
		ps.rules = env
	}
	err := check(ps.rules, expr)
	if err == nil {
		return
	}
	var cerr *rules.Error
	if !errors.As(err, &cerr) {
		ps.addf(n, at, "%v", err)
		return
	}
	if line, col, ok := ps.exprPosition(n, cerr.Line, cerr.Column); ok {
		ps.problems = append(ps.problems, Problem{Line: line, Column: col, Message: at + ": " + cerr.Message})
		return
	}
	where := fmt.Sprintf("column %d", cerr.Column)
	if strings.Contains(expr, "\n") {
		where = fmt.Sprintf("line %d, column %d", cerr.Line, cerr.Column)
	}
	ps.addf(n, at, "%s (at %s of the expression)", cerr.Message, where)
}

// exprPosition returns the position in the source of the character at line:col (1-based) of the
// value of the scalar n. It knows plain and quoted scalars written on one line (escapes and doubled quotes
// included) and literal block scalars (|); ok is false for the others (folded, or spread over
// several lines), and whenever the source does not read as expected.
func (ps *parser) exprPosition(n *yaml.Node, line, col int) (int, int, bool) {
	if n == nil || n.Kind != yaml.ScalarNode || line < 1 || col < 1 {
		return 0, 0, false
	}
	value := []rune(n.Value)
	switch {
	case n.Style&yaml.LiteralStyle != 0:
		return ps.literalPosition(n, line, col)
	case n.Style&yaml.FoldedStyle != 0 || line != 1:
		return 0, 0, false
	}
	raw, ok := ps.sourceLine(n.Line)
	if !ok || n.Column < 1 || n.Column > len(raw) {
		return 0, 0, false
	}
	j := skipProperties(raw, n.Column-1)
	// cols[i] is the 0-based column in raw of character i of the value; cols[len(value)] is just
	// past its end.
	cols := make([]int, 0, len(value)+1)
	switch {
	case n.Style&yaml.SingleQuotedStyle != 0:
		if j >= len(raw) || raw[j] != '\'' {
			return 0, 0, false
		}
		for j++; ; j++ {
			if j >= len(raw) {
				return 0, 0, false // continues on the next line
			}
			if raw[j] == '\'' {
				if j+1 < len(raw) && raw[j+1] == '\'' {
					cols = append(cols, j)
					j++
					continue
				}
				break
			}
			cols = append(cols, j)
		}
		cols = append(cols, j)
	case n.Style&yaml.DoubleQuotedStyle != 0:
		if j >= len(raw) || raw[j] != '"' {
			return 0, 0, false
		}
	scan:
		for j++; ; {
			if j >= len(raw) {
				return 0, 0, false // continues on the next line
			}
			cols = append(cols, j)
			switch {
			case raw[j] == '"':
				break scan
			case raw[j] != '\\':
				j++
			case j+1 >= len(raw):
				return 0, 0, false // an escaped line break
			case raw[j+1] == 'x':
				j += 4
			case raw[j+1] == 'u':
				j += 6
			case raw[j+1] == 'U':
				j += 10
			default:
				j += 2
			}
		}
	default: // plain
		for i := range value {
			cols = append(cols, j+i)
		}
		cols = append(cols, j+len(value))
		if j+len(value) > len(raw) || string(raw[j:j+len(value)]) != string(value) {
			return 0, 0, false // folded over several lines
		}
	}
	if len(cols) != len(value)+1 || col > len(cols) {
		return 0, 0, false
	}
	return n.Line, cols[col-1] + 1, true
}

// literalPosition is exprPosition for a literal block scalar: line k of its value is line k after
// the indicator (|), indented.
func (ps *parser) literalPosition(n *yaml.Node, line, col int) (int, int, bool) {
	lines := strings.Split(n.Value, "\n")
	if line > len(lines) {
		return 0, 0, false
	}
	text := []rune(lines[line-1])
	raw, ok := ps.sourceLine(n.Line + line)
	if !ok || len(raw) < len(text) || string(raw[len(raw)-len(text):]) != string(text) {
		return 0, 0, false
	}
	indent := len(raw) - len(text)
	if strings.TrimLeft(string(raw[:indent]), " ") != "" || col > len(text)+1 {
		return 0, 0, false
	}
	return n.Line + line, indent + col, true
}

// skipProperties returns the index in raw of the first character after the anchor (&a) and tag
// (!!str) that may start a node at index j.
func skipProperties(raw []rune, j int) int {
	for j < len(raw) && (raw[j] == '&' || raw[j] == '!') {
		for j < len(raw) && raw[j] != ' ' && raw[j] != '\t' {
			j++
		}
		for j < len(raw) && (raw[j] == ' ' || raw[j] == '\t') {
			j++
		}
	}
	return j
}

// sourceLine returns line number line (1-based) of the source as characters, without its line
// break.
func (ps *parser) sourceLine(line int) ([]rune, bool) {
	if ps.lines == nil {
		src := strings.TrimPrefix(string(ps.src), "\uFEFF")
		ps.lines = strings.Split(src, "\n")
	}
	if line < 1 || line > len(ps.lines) {
		return nil, false
	}
	return []rune(strings.TrimSuffix(ps.lines[line-1], "\r")), true
}
