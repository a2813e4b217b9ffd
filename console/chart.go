package console

import (
	"fmt"
	"strconv"
	"strings"
)

// Charts are drawn on the server as inline SVG (templates/chart.html), so they read
// without JavaScript. A chart is bars (one per step) or a polyline, with a text
// summary for screen readers and for anyone who prefers numbers.

const (
	chartWidth  = 600
	chartHeight = 120
)

// chart is what templates/chart.html draws.
type chart struct {
	Title   string
	Summary string
	Width   int
	Height  int
	Bars    []bar
	Line    string // polyline points, "" for a bar chart
	From    string
	To      string
	Max     string
}

// bar is one step of a bar chart; Label is its tooltip.
type bar struct {
	X, Y, W, H float64
	Fill       string
	Label      string
}

// successChart draws the share of successful deliveries per step.
func successChart(points []RatePoint) chart {
	c := chart{Title: "Delivery success rate", Width: chartWidth, Height: chartHeight, Max: "100%"}
	if len(points) == 0 {
		c.Summary = "No deliveries yet."
		return c
	}
	w := float64(chartWidth) / float64(len(points))
	var ok, all int
	for i, p := range points {
		n := p.Delivered + p.Failed
		ok, all = ok+p.Delivered, all+n
		b := bar{X: float64(i) * w, W: max(w-1, 1), Fill: "#c8ccd2", H: 2, Y: chartHeight - 2,
			Label: fmt.Sprintf("%s: no deliveries", formatTime(p.At))}
		if n > 0 {
			r := float64(p.Delivered) / float64(n)
			b.H = max(r*chartHeight, 2)
			b.Y = chartHeight - b.H
			b.Fill = "#2f855a"
			if r < 0.9 {
				b.Fill = "#c05621"
			}
			b.Label = fmt.Sprintf("%s: %.0f%% (%d of %d)", formatTime(p.At), r*100, p.Delivered, n)
		}
		c.Bars = append(c.Bars, b)
	}
	c.From, c.To = formatTime(points[0].At), formatTime(points[len(points)-1].At)
	if all == 0 {
		c.Summary = "No deliveries in this period."
	} else {
		c.Summary = fmt.Sprintf("%.1f%% of %d deliveries succeeded between %s and %s.",
			float64(ok)*100/float64(all), all, c.From, c.To)
	}
	return c
}

// rateCharts draws events ingested, delivered and failed per step.
func rateCharts(r Rates) []chart {
	series := []struct {
		title string
		get   func(RatePoint) int
	}{
		{"Events ingested", func(p RatePoint) int { return p.Ingested }},
		{"Deliveries succeeded", func(p RatePoint) int { return p.Delivered }},
		{"Deliveries failed", func(p RatePoint) int { return p.Failed }},
	}
	out := make([]chart, 0, len(series))
	for _, s := range series {
		out = append(out, lineChart(s.title, r, s.get))
	}
	return out
}

func lineChart(title string, r Rates, get func(RatePoint) int) chart {
	c := chart{Title: title, Width: chartWidth, Height: chartHeight}
	if len(r.Points) == 0 {
		c.Summary = "No data for this period."
		return c
	}
	peak, total := 0, 0
	for _, p := range r.Points {
		peak, total = max(peak, get(p)), total+get(p)
	}
	scale := float64(chartHeight-4) / float64(max(peak, 1))
	step := float64(chartWidth) / float64(max(len(r.Points)-1, 1))
	var pts strings.Builder
	for i, p := range r.Points {
		if i > 0 {
			pts.WriteByte(' ')
		}
		pts.WriteString(strconv.FormatFloat(float64(i)*step, 'f', 1, 64))
		pts.WriteByte(',')
		pts.WriteString(strconv.FormatFloat(chartHeight-2-float64(get(p))*scale, 'f', 1, 64))
	}
	c.Line = pts.String()
	c.From, c.To = formatTime(r.Points[0].At), formatTime(r.Points[len(r.Points)-1].At)
	c.Max = strconv.Itoa(peak)
	per := formatSpan(r.Step)
	if r.Step <= 0 {
		per = "step"
	}
	c.Summary = fmt.Sprintf("%d in all between %s and %s; at most %d per %s.", total, c.From, c.To, peak, per)
	return c
}
