package checkpoint

import (
	"strings"
	"testing"
	"time"
)

func TestStopRule(t *testing.T) {
	const budget = 10 * time.Millisecond
	ms := func(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
	round0 := Round{Index: 0, DirtyPages: 0, NewPages: 262144, Duration: ms(600)}
	long := Round{DirtyPages: 8000, Duration: ms(120), PredictedFreeze: ms(6)} // fits the budget, took longer
	over := Round{DirtyPages: 30000, Duration: ms(200), PredictedFreeze: ms(40)}
	for _, tc := range []struct {
		name   string
		rounds []Round
		max    int
		want   string // prefix of the reason; "" goes on
	}{
		{"round 0 never ends it", []Round{round0}, 6, ""},
		{"round 0 at the maximum", []Round{round0}, 1, "reached the maximum of 1 rounds"},
		{"short round that fits", []Round{round0,
			{DirtyPages: 400, Duration: ms(4), PredictedFreeze: ms(1)}}, 6, "predicted final copy 1ms fits"},
		{"long round that fits: one more", []Round{round0, long}, 6, ""},
		{"then the short one ends it", []Round{round0, long,
			{DirtyPages: 500, Duration: ms(5), PredictedFreeze: ms(1)}}, 6, "predicted final copy 1ms fits"},
		{"a second long round that fits ends it", []Round{round0, long,
			{DirtyPages: 3000, Duration: ms(30), PredictedFreeze: ms(3)}}, 6, "predicted final copy 3ms fits"},
		{"long round that fits, at the maximum", []Round{round0, long}, 2, "reached the maximum of 2 rounds"},
		{"over the budget goes on", []Round{round0, over}, 6, ""},
		{"fits after one over it: one more", []Round{round0, over,
			{DirtyPages: 3000, Duration: ms(40), PredictedFreeze: ms(5)}}, 6, ""},
		{"not shrinking", []Round{round0, over,
			{DirtyPages: 29000, Duration: ms(190), PredictedFreeze: ms(39)}}, 6, "the dirty set stopped shrinking (30000 then 29000 pages)"},
		{"never fits", []Round{round0, over,
			{DirtyPages: 20000, Duration: ms(150), PredictedFreeze: ms(30)}}, 6, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := stopRule(tc.rounds, tc.max, budget)
			if tc.want == "" && got != "" || !strings.HasPrefix(got, tc.want) {
				t.Errorf("stopRule after %d rounds = %q, want %q", len(tc.rounds), got, tc.want)
			}
		})
	}
}
