package thresholds

import (
	"encoding/json"
	"testing"
)

// TestLevelsJSON holds the hand-written levels JSON equal to json.Marshal.
func TestLevelsJSON(t *testing.T) {
	at, src, odd := "2025-03-01T10:00:00.5Z", sourceProvider, "<odd \"text\" \xff>"
	for _, ls := range [][]LevelState{
		{},
		{{Percent: 50}},
		{{Percent: 25, Crossed: true, CrossedAt: &at, Source: &src}, {Percent: 50}, {Percent: 100, Crossed: true, CrossedAt: &odd, Source: &odd}},
	} {
		want, err := json.Marshal(ls)
		if err != nil {
			t.Fatal(err)
		}
		if got := levelsJSON(ls); got != string(want) {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}
