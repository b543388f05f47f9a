package precopy

import (
	"reflect"
	"testing"
)

func TestRangeSet(t *testing.T) {
	var s rangeSet
	s.add(10, 20)
	s.add(30, 40)
	s.add(20, 25) // touches: merges
	s.add(50, 50) // empty: ignored
	if want := []Range{{10, 25}, {30, 40}}; !reflect.DeepEqual(s.r, want) {
		t.Fatalf("set %v, want %v", s.r, want)
	}
	tests := []struct {
		start, end uint64
		in, out    []Range
	}{
		{0, 5, nil, []Range{{0, 5}}},
		{0, 50, []Range{{10, 25}, {30, 40}}, []Range{{0, 10}, {25, 30}, {40, 50}}},
		{12, 14, []Range{{12, 14}}, nil},
		{24, 31, []Range{{24, 25}, {30, 31}}, []Range{{25, 30}}},
		{40, 45, nil, []Range{{40, 45}}},
	}
	for _, tc := range tests {
		in, out := s.split(tc.start, tc.end)
		if !reflect.DeepEqual(in, tc.in) || !reflect.DeepEqual(out, tc.out) {
			t.Errorf("split(%d,%d) = %v, %v; want %v, %v", tc.start, tc.end, in, out, tc.in, tc.out)
		}
	}
	s.add(5, 45)
	if want := []Range{{5, 45}}; !reflect.DeepEqual(s.r, want) {
		t.Fatalf("after covering add: %v, want %v", s.r, want)
	}
	s.remove(10, 20)
	s.remove(40, 100)
	if want := []Range{{5, 10}, {20, 40}}; !reflect.DeepEqual(s.r, want) {
		t.Fatalf("after remove: %v, want %v", s.r, want)
	}
}
