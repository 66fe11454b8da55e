package pipeline

import "strings"

// ValidName reports whether s is a valid pipeline name: [a-z0-9][a-z0-9-]{0,62}
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		default:
			return false
		}
	}
	return true
}

// ValidVariableName reports whether s is [A-Za-z_][A-Za-z0-9_]* and not Reserved.
func ValidVariableName(s string) bool {
	return wellFormedVariableName(s) && !Reserved(s)
}

// wellFormedVariableName reports whether s is [A-Za-z_][A-Za-z0-9_]*.
func wellFormedVariableName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Reserved reports names a user may not set: FLOWD_* (case-insensitive prefix), PATH, HOME. PATH
// and HOME are matched case-insensitively too, as environments are on Windows.
func Reserved(s string) bool {
	const prefix = "FLOWD_"
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return true
	}
	return strings.EqualFold(s, "PATH") || strings.EqualFold(s, "HOME")
}
