package registry

import "fmt"

// StringList is a config value that is a string or a list of strings (mmcv's configs take
// either for keys such as ann_file or metric).
type StringList []string

// TOMLType says what a StringList takes, for print_config --describe.
func (StringList) TOMLType() string { return "string or array of string" }

func (l *StringList) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		*l = StringList{x}
		return nil
	case []any:
		*l = nil
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("expected strings, got %v", e)
			}
			*l = append(*l, s)
		}
		return nil
	}
	return fmt.Errorf("expected a string or an array of strings, got %v", v)
}
