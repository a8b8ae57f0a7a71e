package promtext

import "testing"

func TestValue(t *testing.T) {
	text := "# HELP fazt_ws_writes_total Socket writes.\n# TYPE fazt_ws_writes_total counter\n" +
		"fazt_ws_writes_total_x 5\nfazt_ws_writes_total 1.234567e+06\nfazt_ws_frames_sent_total 42\n" +
		`fazt_limit_refusals_total{limit="connections"} 3` + "\n"
	for _, c := range []struct {
		series string
		want   float64
		ok     bool
	}{
		{"fazt_ws_writes_total", 1234567, true},
		{"fazt_ws_frames_sent_total", 42, true},
		{`fazt_limit_refusals_total{limit="connections"}`, 3, true},
		{`fazt_limit_refusals_total{limit="inbound"}`, 0, false},
		{"fazt_ws_full_socket_writes_total", 0, false},
	} {
		if got, ok := Value(text, c.series); got != c.want || ok != c.ok {
			t.Errorf("%s: %v, %v; want %v, %v", c.series, got, ok, c.want, c.ok)
		}
	}
}
