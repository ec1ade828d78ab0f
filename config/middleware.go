package config

import (
	"fmt"

	"go.yaml.in/yaml/v4"

	"github.com/switchyard/switchyard/middleware"
)

// MiddlewareList is a list of middleware specs, first outermost. In the environment (GATEWAY_MIDDLEWARE) it
// takes the compact form middleware.ParseList reads: "gzip,security_headers,ratelimit(rate=100/1m)". In
// YAML it is a sequence of {name, params} mappings (an item may also be a compact string), or one compact
// string. Names and parameters are checked when the gateway is built, not here.
type MiddlewareList []middleware.Spec

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *MiddlewareList) UnmarshalText(b []byte) error {
	specs, err := middleware.ParseList(string(b))
	if err != nil {
		return fmt.Errorf("invalid middleware list: %v (expected NAME or NAME(KEY=VALUE,...) separated by commas, such as gzip,ratelimit(rate=100/1m))", err)
	}
	*l = specs
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (l MiddlewareList) MarshalText() ([]byte, error) { return []byte(middleware.FormatList(l)), nil }

// UnmarshalYAML implements yaml.Unmarshaler. Unknown keys in an item are errors, as everywhere in the file.
func (l *MiddlewareList) UnmarshalYAML(node *yaml.Node) error {
	switch node.Kind {
	case yaml.ScalarNode:
		return l.UnmarshalText([]byte(node.Value))
	case yaml.SequenceNode:
	default:
		return fmt.Errorf("line %d: expected a list of {name: ..., params: {...}} or a string such as gzip,ratelimit(rate=100/1m)", node.Line)
	}
	var out MiddlewareList
	for _, item := range node.Content {
		switch item.Kind {
		case yaml.ScalarNode:
			var more MiddlewareList
			if err := more.UnmarshalText([]byte(item.Value)); err != nil {
				return fmt.Errorf("line %d: %v", item.Line, err)
			}
			out = append(out, more...)
			continue
		case yaml.MappingNode:
		default:
			return fmt.Errorf("line %d: expected {name: ..., params: {...}}", item.Line)
		}
		var s middleware.Spec
		for i := 0; i+1 < len(item.Content); i += 2 {
			k, v := item.Content[i], item.Content[i+1]
			switch k.Value {
			case "name":
				if v.Kind != yaml.ScalarNode || v.Value == "" {
					return fmt.Errorf("line %d: name: expected a name such as gzip", v.Line)
				}
				s.Name = v.Value
			case "params":
				if v.Kind != yaml.MappingNode {
					return fmt.Errorf("line %d: %s: params: expected a mapping of names to values", v.Line, s.Name)
				}
				s.Params = map[string]string{}
				for j := 0; j+1 < len(v.Content); j += 2 {
					pk, pv := v.Content[j], v.Content[j+1]
					if pv.Kind != yaml.ScalarNode {
						return fmt.Errorf("line %d: parameter %s: expected a plain value (a list is one comma-separated string)", pv.Line, pk.Value)
					}
					s.Params[pk.Value] = pv.Value
				}
			default:
				hint := ""
				if s := suggestKey(k.Value, middlewareItemKeys); s != "" {
					hint = "; did you mean " + s + "?"
				}
				return fmt.Errorf("line %d: unknown key %q%s (valid here: name, params)", k.Line, k.Value, hint)
			}
		}
		if s.Name == "" {
			return fmt.Errorf("line %d: name is missing", item.Line)
		}
		out = append(out, s)
	}
	*l = out
	return nil
}

// middlewareItemKeys are the keys of one YAML middleware item, for did-you-mean hints.
var middlewareItemKeys = fileKeys{names: []string{"name", "params"}, index: map[string]int{"name": 0, "params": 1}}
