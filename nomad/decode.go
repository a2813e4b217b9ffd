package nomad

import (
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// decoder fills api types from HCL bodies by their `hcl` struct tags, as Nomad's job
// parser does: `name` is a required attribute, `name,optional` an optional one,
// `name,block` blocks (a slice, a pointer, a map keyed by the block's label, or a
// map[string]string / map[string]any / map[string][]string of the block's attributes),
// `name,label` / `,label` the block's labels. Everything else in a body is an error.
type decoder struct {
	ctx *hcl.EvalContext
}

var durationType = reflect.TypeFor[time.Duration]()

func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }

// field is one tagged field of a struct.
type field struct {
	index int
	name  string
	kind  string // "attr", "optional", "block", "label"
}

func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		tag, ok := t.Field(i).Tag.Lookup("hcl")
		if !ok || tag == "-" {
			continue
		}
		name, kind, _ := strings.Cut(tag, ",")
		if kind == "" {
			kind = "attr"
		}
		out = append(out, field{index: i, name: name, kind: kind})
	}
	return out
}

// labelCount is how many labels a block decoded into t carries.
func labelCount(t reflect.Type) int {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return 0
	}
	n := 0
	for _, f := range fieldsOf(t) {
		if f.kind == "label" {
			n++
		}
	}
	return n
}

// blockElem is the struct type a block field holds, or nil for the attribute maps.
func blockElem(t reflect.Type) reflect.Type {
	switch t.Kind() {
	case reflect.Map:
		if t.Elem().Kind() == reflect.Pointer && t.Elem().Elem().Kind() == reflect.Struct {
			return t.Elem().Elem()
		}
		return nil
	case reflect.Slice:
		t = t.Elem()
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func (d *decoder) decodeBody(body hcl.Body, v reflect.Value) hcl.Diagnostics {
	fields := fieldsOf(v.Type())
	schema := &hcl.BodySchema{}
	for _, f := range fields {
		switch f.kind {
		case "attr", "optional":
			schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: f.name, Required: f.kind == "attr"})
		case "block":
			ft := v.Type().Field(f.index).Type
			labels := 0
			if e := blockElem(ft); e != nil {
				labels = labelCount(e)
			}
			names := make([]string, labels)
			for i := range names {
				names[i] = fmt.Sprintf("label%d", i)
			}
			schema.Blocks = append(schema.Blocks, hcl.BlockHeaderSchema{Type: f.name, LabelNames: names})
		}
	}
	content, diags := body.Content(schema)
	if diags.HasErrors() {
		return diags
	}
	for _, f := range fields {
		fv := v.Field(f.index)
		switch f.kind {
		case "attr", "optional":
			a, ok := content.Attributes[f.name]
			if !ok {
				continue
			}
			diags = append(diags, d.decodeAttr(a, fv)...)
		case "block":
			blocks := content.Blocks.OfType(f.name)
			if len(blocks) == 0 {
				continue
			}
			diags = append(diags, d.decodeBlocks(f.name, blocks, fv)...)
		}
		if diags.HasErrors() {
			return diags
		}
	}
	return diags
}

// decodeLabels puts a block's labels into the struct's label fields, in order.
func decodeLabels(b *hcl.Block, v reflect.Value) {
	i := 0
	for _, f := range fieldsOf(v.Type()) {
		if f.kind != "label" || i >= len(b.Labels) {
			continue
		}
		fv := v.Field(f.index)
		if fv.Kind() == reflect.Pointer {
			fv.Set(reflect.New(fv.Type().Elem()))
			fv = fv.Elem()
		}
		fv.SetString(b.Labels[i])
		i++
	}
}

func (d *decoder) decodeStruct(b *hcl.Block, t reflect.Type) (reflect.Value, hcl.Diagnostics) {
	v := reflect.New(t).Elem()
	decodeLabels(b, v)
	return v, d.decodeBody(b.Body, v)
}

func (d *decoder) decodeBlocks(name string, blocks hcl.Blocks, fv reflect.Value) hcl.Diagnostics {
	t := fv.Type()
	switch t.Kind() {
	case reflect.Slice:
		elem := t.Elem()
		for _, b := range blocks {
			st := elem
			if st.Kind() == reflect.Pointer {
				st = st.Elem()
			}
			v, diags := d.decodeStruct(b, st)
			if diags.HasErrors() {
				return diags
			}
			if elem.Kind() == reflect.Pointer {
				v = v.Addr()
			}
			fv.Set(reflect.Append(fv, v))
		}
		return nil
	case reflect.Pointer:
		if len(blocks) > 1 {
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Duplicate " + name + " block",
				Detail: "Only one " + name + " block is allowed here.", Subject: &blocks[1].DefRange}}
		}
		v, diags := d.decodeStruct(blocks[0], t.Elem())
		if diags.HasErrors() {
			return diags
		}
		fv.Set(v.Addr())
		return nil
	case reflect.Map:
		if fv.IsNil() {
			fv.Set(reflect.MakeMap(t))
		}
		if e := blockElem(t); e != nil {
			for _, b := range blocks {
				v, diags := d.decodeStruct(b, e)
				if diags.HasErrors() {
					return diags
				}
				key := reflect.ValueOf(b.Labels[0])
				if fv.MapIndex(key).IsValid() {
					return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Duplicate " + name + " block",
						Detail: fmt.Sprintf("A %s block labelled %q is already defined.", name, b.Labels[0]), Subject: &b.DefRange}}
				}
				fv.SetMapIndex(key, v.Addr())
			}
			return nil
		}
		// A block of free-form attributes (meta, env, config, options, header).
		for _, b := range blocks {
			attrs, diags := b.Body.JustAttributes()
			if diags.HasErrors() {
				return diags
			}
			for k, a := range attrs {
				ev := reflect.New(t.Elem()).Elem()
				if diags := d.decodeAttr(a, ev); diags.HasErrors() {
					return diags
				}
				fv.SetMapIndex(reflect.ValueOf(k), ev)
			}
		}
		return nil
	}
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unsupported block field", Detail: name, Subject: &blocks[0].DefRange}}
}

// eval evaluates expr, keeping Nomad's runtime interpolations as text.
func (d *decoder) eval(expr hcl.Expression) (cty.Value, hcl.Diagnostics) {
	runtime := map[string]cty.Value{}
	for _, tr := range expr.Variables() {
		root := tr.RootName()
		if !isRuntimeRoot(root) {
			continue
		}
		path := []string{root}
		for _, step := range tr[1:] {
			a, ok := step.(hcl.TraverseAttr)
			if !ok {
				r := tr.SourceRange()
				return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unsupported runtime interpolation",
					Detail: "Write Nomad's runtime values with attribute access, like ${meta.name}.", Subject: &r}}
			}
			path = append(path, a.Name)
		}
		runtime[root] = placeholder(runtime[root], path, 1)
	}
	ctx := d.ctx
	if len(runtime) > 0 {
		ctx = d.ctx.NewChild()
		ctx.Variables = runtime
	}
	return expr.Value(ctx)
}

// placeholder returns v with the runtime reference path set to the text "${path}".
func placeholder(v cty.Value, path []string, i int) cty.Value {
	if i == len(path) {
		return cty.StringVal("${" + strings.Join(path, ".") + "}")
	}
	attrs := map[string]cty.Value{}
	if v != cty.NilVal && v.Type().IsObjectType() {
		attrs = v.AsValueMap()
		if attrs == nil {
			attrs = map[string]cty.Value{}
		}
	}
	attrs[path[i]] = placeholder(attrs[path[i]], path, i+1)
	return cty.ObjectVal(attrs)
}

func (d *decoder) decodeAttr(a *hcl.Attribute, fv reflect.Value) hcl.Diagnostics {
	val, diags := d.eval(a.Expr)
	if diags.HasErrors() {
		return diags
	}
	if err := assign(val, fv); err != nil {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value for " + a.Name, Detail: err.Error(), Subject: &a.Range}}
	}
	return nil
}

// assign stores the cty value val into fv, converting it to fv's type.
func assign(val cty.Value, fv reflect.Value) error {
	if val.IsNull() {
		return nil
	}
	if !val.IsWhollyKnown() {
		return fmt.Errorf("value is not known")
	}
	t := fv.Type()
	if t.Kind() == reflect.Pointer {
		p := reflect.New(t.Elem())
		if err := assign(val, p.Elem()); err != nil {
			return err
		}
		fv.Set(p)
		return nil
	}
	if t == durationType {
		s, err := convert.Convert(val, cty.String)
		if err != nil {
			return fmt.Errorf("want a duration like \"30s\": %w", err)
		}
		dur, err := time.ParseDuration(s.AsString())
		if err != nil {
			return fmt.Errorf("want a duration like \"30s\": %w", err)
		}
		fv.SetInt(int64(dur))
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		s, err := convert.Convert(val, cty.String)
		if err != nil {
			return fmt.Errorf("want a string: %w", err)
		}
		fv.SetString(s.AsString())
	case reflect.Bool:
		b, err := convert.Convert(val, cty.Bool)
		if err != nil {
			return fmt.Errorf("want true or false: %w", err)
		}
		fv.SetBool(b.True())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := integer(val)
		if err != nil {
			return err
		}
		if !n.IsInt64() || fv.OverflowInt(n.Int64()) {
			return fmt.Errorf("%s is out of range", n)
		}
		fv.SetInt(n.Int64())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := integer(val)
		if err != nil {
			return err
		}
		if n.Sign() < 0 || !n.IsUint64() || fv.OverflowUint(n.Uint64()) {
			return fmt.Errorf("%s is out of range", n)
		}
		fv.SetUint(n.Uint64())
	case reflect.Float32, reflect.Float64:
		n, err := convert.Convert(val, cty.Number)
		if err != nil {
			return fmt.Errorf("want a number: %w", err)
		}
		f, _ := n.AsBigFloat().Float64()
		fv.SetFloat(f)
	case reflect.Slice:
		if !val.CanIterateElements() || val.Type().IsMapType() || val.Type().IsObjectType() {
			return fmt.Errorf("want a list")
		}
		out := reflect.MakeSlice(t, 0, val.LengthInt())
		for it := val.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			e := reflect.New(t.Elem()).Elem()
			if err := assign(ev, e); err != nil {
				return err
			}
			out = reflect.Append(out, e)
		}
		fv.Set(out)
	case reflect.Map:
		if !val.Type().IsMapType() && !val.Type().IsObjectType() {
			return fmt.Errorf("want a map")
		}
		out := reflect.MakeMap(t)
		for it := val.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			e := reflect.New(t.Elem()).Elem()
			if err := assign(ev, e); err != nil {
				return err
			}
			out.SetMapIndex(reflect.ValueOf(k.AsString()), e)
		}
		fv.Set(out)
	case reflect.Interface:
		g, err := generic(val)
		if err != nil {
			return err
		}
		if g != nil {
			fv.Set(reflect.ValueOf(g))
		}
	default:
		return fmt.Errorf("unsupported field type %s", t)
	}
	return nil
}

func integer(val cty.Value) (*big.Int, error) {
	n, err := convert.Convert(val, cty.Number)
	if err != nil {
		return nil, fmt.Errorf("want a whole number: %w", err)
	}
	i, acc := n.AsBigFloat().Int(nil)
	if acc != big.Exact {
		return nil, fmt.Errorf("want a whole number, got %s", n.AsBigFloat())
	}
	return i, nil
}

// generic converts val to plain Go values (string, int or float64, bool, []any,
// map[string]any), as a task driver's config is kept.
func generic(val cty.Value) (any, error) {
	if val.IsNull() {
		return nil, nil
	}
	t := val.Type()
	switch {
	case t == cty.String:
		return val.AsString(), nil
	case t == cty.Bool:
		return val.True(), nil
	case t == cty.Number:
		f := val.AsBigFloat()
		if i, acc := f.Int64(); acc == big.Exact {
			return int(i), nil
		}
		x, _ := f.Float64()
		return x, nil
	case t.IsListType() || t.IsTupleType() || t.IsSetType():
		out := []any{}
		for it := val.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			g, err := generic(ev)
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return out, nil
	case t.IsMapType() || t.IsObjectType():
		out := map[string]any{}
		for it := val.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			g, err := generic(ev)
			if err != nil {
				return nil, err
			}
			out[k.AsString()] = g
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported value of type %s", t.FriendlyName())
}
