// Package promtext reads values from Prometheus's text exposition format,
// as /metrics serves it: what `fazt bench` and the tests read back.
package promtext

import (
	"strconv"
	"strings"
)

// Value is the value of one series in text: series is the metric's name
// with its labels as the format writes them, e.g.
// `fazt_limit_refusals_total{limit="connections"}`. Large values come
// with an exponent (1.2e+06). It reports false when the series is not
// there or its value does not parse.
func Value(text, series string) (float64, bool) {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}
