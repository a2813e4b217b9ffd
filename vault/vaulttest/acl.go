package vaulttest

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"
	"github.com/zclconf/go-cty/cty"
)

// Capabilities a policy can grant, as in Vault.
const (
	capCreate    = "create"
	capRead      = "read"
	capUpdate    = "update"
	capPatch     = "patch"
	capDelete    = "delete"
	capList      = "list"
	capSudo      = "sudo"
	capDeny      = "deny"
	capSubscribe = "subscribe"
	capRecover   = "recover"
)

// validCapability reports whether c is a capability Vault knows.
func validCapability(c string) bool {
	switch c {
	case capCreate, capRead, capUpdate, capPatch, capDelete, capList, capSudo, capDeny, capSubscribe, capRecover:
		return true
	}
	return false
}

// policyShorthand maps the deprecated `policy = "..."` form to capabilities, as Vault
// does.
func policyShorthand(p string) ([]string, bool) {
	switch p {
	case "deny":
		return []string{capDeny}, true
	case "read":
		return []string{capRead, capList}, true
	case "write":
		return []string{capCreate, capRead, capUpdate, capDelete, capList}, true
	case "sudo":
		return []string{capCreate, capRead, capUpdate, capDelete, capList, capSudo}, true
	}
	return nil, false
}

// pathRule is one `path "..." { capabilities = [...] }` block.
type pathRule struct {
	pattern      string // as written, without a leading slash
	capabilities []string
}

// policy is a parsed ACL policy.
type policy struct {
	name  string
	text  string
	rules []pathRule
}

// parsePolicy parses Vault policy HCL (native syntax, or JSON when it starts with "{").
// It accepts what Vault accepts for path rules and rejects unknown top-level keys,
// unknown capabilities and misplaced globs.
func parsePolicy(name, text string) (*policy, error) {
	var (
		file  *hcl.File
		diags hcl.Diagnostics
	)
	if strings.HasPrefix(strings.TrimSpace(text), "{") {
		file, diags = hcljson.Parse([]byte(text), name+".json")
	} else {
		file, diags = hclsyntax.ParseConfig([]byte(text), name+".hcl", hcl.Pos{Line: 1, Column: 1})
	}
	if diags.HasErrors() {
		return nil, errors.New(diags.Error())
	}
	content, diags := file.Body.Content(&hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "name"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "path", LabelNames: []string{"path"}}},
	})
	if diags.HasErrors() {
		return nil, errors.New(diags.Error())
	}
	p := &policy{name: name, text: text}
	for _, b := range content.Blocks {
		rule, err := parsePathBlock(b)
		if err != nil {
			return nil, err
		}
		p.rules = append(p.rules, rule)
	}
	return p, nil
}

func parsePathBlock(b *hcl.Block) (pathRule, error) {
	pattern := strings.TrimPrefix(b.Labels[0], "/")
	if i := strings.Index(pattern, "*"); i >= 0 && i != len(pattern)-1 {
		return pathRule{}, fmt.Errorf("path %q: the glob * may only end a path", b.Labels[0])
	}
	attrs, _, diags := b.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "capabilities"}, {Name: "policy"},
	}})
	if diags.HasErrors() {
		return pathRule{}, errors.New(diags.Error())
	}
	rule := pathRule{pattern: pattern}
	if a, ok := attrs.Attributes["policy"]; ok {
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() || v.Type() != cty.String || v.IsNull() {
			return pathRule{}, fmt.Errorf("path %q: policy must be a string", pattern)
		}
		caps, ok := policyShorthand(v.AsString())
		if !ok {
			return pathRule{}, fmt.Errorf("path %q: invalid policy %q", pattern, v.AsString())
		}
		rule.capabilities = append(rule.capabilities, caps...)
	}
	if a, ok := attrs.Attributes["capabilities"]; ok {
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() || v.IsNull() || !(v.Type().IsListType() || v.Type().IsTupleType() || v.Type().IsSetType()) {
			return pathRule{}, fmt.Errorf("path %q: capabilities must be a list of strings", pattern)
		}
		for it := v.ElementIterator(); it.Next(); {
			_, c := it.Element()
			if c.IsNull() || c.Type() != cty.String {
				return pathRule{}, fmt.Errorf("path %q: capabilities must be a list of strings", pattern)
			}
			s := strings.ToLower(c.AsString())
			if !validCapability(s) {
				return pathRule{}, fmt.Errorf("path %q: invalid capability %q", pattern, s)
			}
			rule.capabilities = append(rule.capabilities, s)
		}
	}
	return rule, nil
}

// acl is the merged view of a token's policies: one capability set per distinct path
// pattern. A pattern with deny in any policy grants nothing.
type acl struct {
	root  bool
	rules map[string][]string
}

// newACL merges policies the way Vault does: capabilities of the same pattern are
// united across policies, and deny on a pattern overrides everything else on it.
func newACL(policies []*policy) *acl {
	a := &acl{rules: map[string][]string{}}
	for _, p := range policies {
		if p.name == "root" {
			a.root = true
		}
		for _, r := range p.rules {
			cur := a.rules[r.pattern]
			if slices.Contains(cur, capDeny) {
				continue
			}
			if slices.Contains(r.capabilities, capDeny) {
				a.rules[r.pattern] = []string{capDeny}
				continue
			}
			for _, c := range r.capabilities {
				if !slices.Contains(cur, c) {
					cur = append(cur, c)
				}
			}
			a.rules[r.pattern] = cur
		}
	}
	return a
}

// capabilities returns what the ACL grants on path: the capability set of the
// highest-priority pattern matching it (nil when none matches or it denies).
func (a *acl) capabilities(path string) []string {
	var (
		best  string
		found bool
	)
	for pattern := range a.rules {
		if !matchPattern(pattern, path) {
			continue
		}
		if !found || higherPriority(pattern, best) {
			best, found = pattern, true
		}
	}
	if !found {
		return nil
	}
	caps := a.rules[best]
	if slices.Contains(caps, capDeny) {
		return nil
	}
	out := slices.Clone(caps)
	sort.Strings(out)
	return out
}

// allowed reports whether the ACL grants capability on path, plus sudo when needsSudo.
// The root policy allows everything.
func (a *acl) allowed(path, capability string, needsSudo bool) bool {
	if a.root {
		return true
	}
	caps := a.capabilities(path)
	if !slices.Contains(caps, capability) {
		return false
	}
	return !needsSudo || slices.Contains(caps, capSudo)
}

// matchPattern reports whether a policy path pattern matches path: an exact path, a
// prefix when the pattern ends in *, and + standing for exactly one path segment.
func matchPattern(pattern, path string) bool {
	glob := strings.HasSuffix(pattern, "*")
	p := strings.TrimSuffix(pattern, "*")
	if !hasSegmentWildcard(p) {
		if glob {
			return strings.HasPrefix(path, p)
		}
		return path == p
	}
	pp := strings.Split(p, "/")
	ap := strings.Split(path, "/")
	if !glob {
		if len(ap) != len(pp) {
			return false
		}
		for i := range pp {
			if pp[i] != "+" && pp[i] != ap[i] {
				return false
			}
		}
		return true
	}
	if len(ap) < len(pp) {
		return false
	}
	last := len(pp) - 1
	for i := range last {
		if pp[i] != "+" && pp[i] != ap[i] {
			return false
		}
	}
	return strings.HasPrefix(strings.Join(ap[last:], "/"), pp[last])
}

// hasSegmentWildcard reports whether p has a "+" segment.
func hasSegmentWildcard(p string) bool { return segmentWildcards(p) > 0 }

// segmentWildcards counts the "+" segments of pattern.
func segmentWildcards(pattern string) int {
	n := 0
	for seg := range strings.SplitSeq(strings.TrimSuffix(pattern, "*"), "/") {
		if seg == "+" {
			n++
		}
	}
	return n
}

// firstWildcard returns the index of the first + segment or * in pattern, or its length
// when it has none.
func firstWildcard(pattern string) int {
	first := len(pattern)
	if i := strings.Index(pattern, "*"); i >= 0 {
		first = i
	}
	off := 0
	for seg := range strings.SplitSeq(pattern, "/") {
		if seg == "+" {
			return min(first, off)
		}
		off += len(seg) + 1
	}
	return first
}

// higherPriority reports whether pattern a beats pattern b when both match a path,
// by Vault's documented rules, in order: the later first wildcard wins; no trailing *
// beats a trailing *; fewer + segments win; the longer pattern wins; the
// lexicographically greater pattern wins.
func higherPriority(a, b string) bool {
	if fa, fb := firstWildcard(a), firstWildcard(b); fa != fb {
		return fa > fb
	}
	if ga, gb := strings.HasSuffix(a, "*"), strings.HasSuffix(b, "*"); ga != gb {
		return !ga
	}
	if pa, pb := segmentWildcards(a), segmentWildcards(b); pa != pb {
		return pa < pb
	}
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}
