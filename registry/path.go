package registry

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// parseKeyPath splits a dotted TOML key such as `model.head.temperature`,
// `train_dataloader.dataset.pipeline.1.prob` or `a."b.c"` into its segments.
func parseKeyPath(s string) ([]string, error) {
	var segs []string
	rest := strings.TrimSpace(s)
	if rest == "" {
		return nil, fmt.Errorf("empty key")
	}
	for {
		rest = strings.TrimLeft(rest, " \t")
		var seg string
		switch {
		case strings.HasPrefix(rest, `"`):
			end := closingQuote(rest)
			if end < 0 {
				return nil, fmt.Errorf("key %q: unterminated quoted segment", s)
			}
			u, err := strconv.Unquote(rest[:end+1])
			if err != nil || !utf8.ValidString(u) {
				return nil, fmt.Errorf("key %q: bad quoted segment %s", s, rest[:end+1])
			}
			seg, rest = u, rest[end+1:]
		case strings.HasPrefix(rest, "'"):
			end := strings.IndexByte(rest[1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("key %q: unterminated quoted segment", s)
			}
			seg, rest = rest[1:end+1], rest[end+2:]
		default:
			end := strings.IndexAny(rest, ". \t")
			if end < 0 {
				end = len(rest)
			}
			seg, rest = rest[:end], rest[end:]
			if !bareKey.MatchString(seg) {
				return nil, fmt.Errorf("key %q: %q is not a valid key segment (quote it)", s, seg)
			}
		}
		segs = append(segs, seg)
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			return segs, nil
		}
		if rest[0] != '.' {
			return nil, fmt.Errorf("key %q: expected '.' after %q", s, seg)
		}
		rest = rest[1:]
	}
}

// closingQuote returns the index of the quote that ends the basic string at s[0].
func closingQuote(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}
