package main

import (
	"slices"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []int
	}{
		{5000, []int{5000}},
		{9990, []int{9990}},
		{10000, []int{9990}},
		{15000, []int{7500, 7500}},
		{20000, []int{9990, 9990}},
		{30000, []int{9990, 9990, 9990}},
		{0, nil},
	} {
		if got := split(tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("split(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}
