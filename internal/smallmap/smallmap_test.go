package smallmap

import (
	"maps"
	"math/rand/v2"
	"testing"
)

// TestMapMatchesAGoMap applies the same random operations to a Map and to
// a Go map, over key ranges that keep it in its slice, move it across the
// threshold, and keep it in its map, and compares them after each one.
// Phases of mostly sets and mostly deletes take it from its slice to a
// map and back, many times.
func TestMapMatchesAGoMap(t *testing.T) {
	for _, keys := range []int{3, small, small + 1, 40} {
		r := rand.New(rand.NewPCG(1, uint64(keys)))
		var s Map[int, int]
		want := map[int]int{}
		toMap, toSlice := 0, 0
		for op := range 20000 {
			wasMap := s.m != nil
			k := r.IntN(keys)
			// Phases of 400 operations: three sets in four, then deletes
			// only.
			setting := op/400%2 == 0 && r.IntN(4) != 0
			if setting {
				s.Set(k, op)
				want[k] = op
			} else {
				s.Delete(k)
				delete(want, k)
			}
			switch {
			case !wasMap && s.m != nil:
				toMap++
			case wasMap && s.m == nil:
				toSlice++
			}
			if s.Len() != len(want) {
				t.Fatalf("%d keys, op %d: Len %d, want %d", keys, op, s.Len(), len(want))
			}
			got := maps.Collect(s.All())
			if !maps.Equal(got, want) {
				t.Fatalf("%d keys, op %d: entries %v, want %v", keys, op, got, want)
			}
			for k := range keys {
				v, ok := s.Get(k)
				if w, wok := want[k]; v != w || ok != wok {
					t.Fatalf("%d keys, op %d: Get(%d) = %d, %v; want %d, %v", keys, op, k, v, ok, w, wok)
				}
			}
			if s.m == nil && len(s.pairs) > small || s.m != nil && len(s.pairs) > 0 {
				t.Fatalf("%d keys, op %d: %d entries in the slice, map %v", keys, op, len(s.pairs), s.m != nil)
			}
		}
		if keys > small && (toMap < 10 || toSlice < 10) {
			t.Fatalf("%d keys: went to a map %d times and back %d times; the test means to cross many times", keys, toMap, toSlice)
		}
	}
}

// TestMapKeepsFewEntriesInItsSlice checks where the entries live: in the
// slice up to eight, in a Go map past that, and in neither once empty.
func TestMapKeepsFewEntriesInItsSlice(t *testing.T) {
	var s Map[string, *int]
	for i := range small {
		s.Set(string(rune('a'+i)), new(int))
	}
	if s.m != nil || len(s.pairs) != small {
		t.Fatalf("with %d entries: map %v, slice %d", small, s.m != nil, len(s.pairs))
	}
	s.Set("z", nil)
	if s.m == nil || s.pairs != nil || s.Len() != small+1 {
		t.Fatalf("past %d entries: map %v, slice %d", small, s.m != nil, len(s.pairs))
	}
	for k := range maps.Collect(s.All()) {
		s.Delete(k)
	}
	if s.m != nil || s.pairs != nil || s.Len() != 0 {
		t.Fatalf("emptied: map %v, slice %v", s.m, s.pairs)
	}
	s.Set("a", nil)
	s.Set("b", nil)
	s.Delete("a")
	if s.pairs[:cap(s.pairs)][1] != (pair[string, *int]{}) {
		t.Fatal("a deleted entry is still referenced from the slice's spare capacity")
	}
}

func BenchmarkGetOne(b *testing.B) {
	var s Map[string, *int]
	s.Set("room-12345", new(int))
	for b.Loop() {
		if _, ok := s.Get("room-12345"); !ok {
			b.Fatal("missing")
		}
	}
}
