// Package nomad holds edgehook's Nomad job files (*.nomad.hcl) and decodes them into
// the types of Nomad's api module the way `nomad job run` reads a job, so that tests can
// check every job against the binary it runs. Only Nomad's api module is used: its
// server module is not open-source licensed.
package nomad

import (
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/nomad/api"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// jobFiles are the job files of this folder, the ones operators run.
//
//go:embed *.nomad.hcl
var jobFiles embed.FS

// Files returns the names of the job files, sorted.
func Files() []string {
	names, _ := fs.Glob(jobFiles, "*.nomad.hcl")
	slices.Sort(names)
	return names
}

// Source returns the text of the job file called name.
func Source(name string) ([]byte, error) { return jobFiles.ReadFile(name) }

// Variable is a `variable` block of a job file.
type Variable struct {
	Name        string
	Description string
	Type        cty.Type
	// Default is cty.NilVal when the variable has none (a value must be given).
	Default cty.Value
}

// Variables returns the `variable` blocks of the job file src.
func Variables(filename string, src []byte) ([]Variable, error) {
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	content, diags := f.Body.Content(fileSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	return variables(content)
}

var fileSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "variable", LabelNames: []string{"name"}},
	{Type: "job", LabelNames: []string{"id"}},
}}

var variableSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "type"}, {Name: "default"}, {Name: "description"},
}}

func variables(content *hcl.BodyContent) ([]Variable, error) {
	var out []Variable
	for _, b := range content.Blocks.OfType("variable") {
		c, diags := b.Body.Content(variableSchema)
		if diags.HasErrors() {
			return nil, diags
		}
		v := Variable{Name: b.Labels[0], Type: cty.DynamicPseudoType, Default: cty.NilVal}
		if a, ok := c.Attributes["type"]; ok {
			t, diags := typeexpr.TypeConstraint(a.Expr)
			if diags.HasErrors() {
				return nil, diags
			}
			v.Type = t
		}
		if a, ok := c.Attributes["description"]; ok {
			d, diags := a.Expr.Value(nil)
			if diags.HasErrors() {
				return nil, diags
			}
			if d.Type() != cty.String || d.IsNull() {
				return nil, fmt.Errorf("%s: variable %q: description must be a string", a.Range, v.Name)
			}
			v.Description = d.AsString()
		}
		if a, ok := c.Attributes["default"]; ok {
			d, diags := a.Expr.Value(nil)
			if diags.HasErrors() {
				return nil, diags
			}
			d, err := convert.Convert(d, v.Type)
			if err != nil {
				return nil, fmt.Errorf("%s: variable %q: default: %w", a.Range, v.Name, err)
			}
			v.Default = d
		}
		if slices.ContainsFunc(out, func(o Variable) bool { return o.Name == v.Name }) {
			return nil, fmt.Errorf("%s: variable %q is declared twice", b.DefRange, v.Name)
		}
		out = append(out, v)
	}
	return out, nil
}

// Parse decodes the job file src (named filename in errors): its `variable` blocks, then
// its one `job` block, with vars overriding the variables' defaults as `nomad job run
// -var name=value` does (a string is taken as is, any other type is parsed as an HCL
// expression). Nomad's runtime interpolations (${NOMAD_PORT_http}, ${node.unique.name},
// ${meta.x}, ${attr.x}) stay in the strings, as Nomad leaves them for its client to
// fill. An attribute or block the api type does not have, a variable the file does not
// declare, or a declared one without a value is an error naming it and its place.
func Parse(filename string, src []byte, vars map[string]string) (*api.Job, error) {
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	content, diags := f.Body.Content(fileSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	decls, err := variables(content)
	if err != nil {
		return nil, err
	}
	values := map[string]cty.Value{}
	for _, v := range decls {
		values[v.Name] = v.Default
	}
	for name, s := range vars {
		i := slices.IndexFunc(decls, func(v Variable) bool { return v.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("%s: -var %s: the job declares no such variable", filename, name)
		}
		val, err := variableValue(decls[i], s)
		if err != nil {
			return nil, fmt.Errorf("%s: -var %s: %w", filename, name, err)
		}
		values[name] = val
	}
	for _, v := range decls {
		if values[v.Name] == cty.NilVal {
			return nil, fmt.Errorf("%s: variable %q has no default: give it with -var %s=...", filename, v.Name, v.Name)
		}
	}
	jobs := content.Blocks.OfType("job")
	if len(jobs) != 1 {
		return nil, fmt.Errorf("%s: want exactly one job block, found %d", filename, len(jobs))
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(values)}}
	d := &decoder{ctx: ctx}
	job := &api.Job{}
	if diags := d.decodeBody(jobs[0].Body, reflectValue(job)); diags.HasErrors() {
		return nil, diags
	}
	id := jobs[0].Labels[0]
	job.ID = &id
	if job.Name == nil {
		job.Name = &id
	}
	normalize(job)
	return job, nil
}

// variableValue converts a -var value to the variable's type.
func variableValue(v Variable, s string) (cty.Value, error) {
	if v.Type == cty.String {
		return cty.StringVal(s), nil
	}
	expr, diags := hclsyntax.ParseExpression([]byte(s), "-var "+v.Name, hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	val, diags := expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	out, err := convert.Convert(val, v.Type)
	if err != nil {
		return cty.NilVal, fmt.Errorf("want %s: %w", v.Type.FriendlyName(), err)
	}
	return out, nil
}

// normalize applies what Nomad's job parser does after decoding: a port with a static
// value is a reserved port.
func normalize(job *api.Job) {
	fix := func(nets []*api.NetworkResource) {
		for _, n := range nets {
			var dynamic []api.Port
			for _, p := range n.DynamicPorts {
				if p.Value != 0 {
					n.ReservedPorts = append(n.ReservedPorts, p)
				} else {
					dynamic = append(dynamic, p)
				}
			}
			n.DynamicPorts = dynamic
		}
	}
	for _, g := range job.TaskGroups {
		fix(g.Networks)
		for _, t := range g.Tasks {
			if t.Resources != nil {
				fix(t.Resources.Networks)
			}
		}
	}
}

// isRuntimeRoot reports whether name is the root of an interpolation Nomad's client
// fills in at run time.
func isRuntimeRoot(name string) bool {
	switch name {
	case "node", "attr", "meta":
		return true
	}
	return strings.HasPrefix(name, "NOMAD_")
}
