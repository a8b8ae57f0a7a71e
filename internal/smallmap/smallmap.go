// Package smallmap is a map that keeps up to eight entries in a slice.
//
// Most of a realtime server's sets hold one entry or a few: the channels
// a connection joined, the subscribers of a room. A Go map costs about
// 250 bytes however few entries it holds (its header and a group of
// eight slots); a slice of one entry costs a few dozen. A Map moves its
// entries into a Go map once it holds more than eight, and back once it
// is empty.
package smallmap

import "iter"

// small is the most entries kept in the slice; a lookup then compares at
// most this many keys, as a Go map's group does.
const small = 8

// Map is a map from K to V. Its zero value is empty and ready to use. It
// is not safe for concurrent use.
type Map[K comparable, V any] struct {
	pairs []pair[K, V] // while m is nil
	m     map[K]V
}

type pair[K comparable, V any] struct {
	k K
	v V
}

// Len returns the number of entries.
func (s *Map[K, V]) Len() int {
	if s.m != nil {
		return len(s.m)
	}
	return len(s.pairs)
}

// Get returns the value for k and whether there is one.
func (s *Map[K, V]) Get(k K) (V, bool) {
	if s.m != nil {
		v, ok := s.m[k]
		return v, ok
	}
	for i := range s.pairs {
		if s.pairs[i].k == k {
			return s.pairs[i].v, true
		}
	}
	var zero V
	return zero, false
}

// Set sets the value for k.
func (s *Map[K, V]) Set(k K, v V) {
	if s.m != nil {
		s.m[k] = v
		return
	}
	for i := range s.pairs {
		if s.pairs[i].k == k {
			s.pairs[i].v = v
			return
		}
	}
	if len(s.pairs) < small {
		s.pairs = append(s.pairs, pair[K, V]{k, v})
		return
	}
	s.m = make(map[K]V, 2*small)
	for _, p := range s.pairs {
		s.m[p.k] = p.v
	}
	s.m[k] = v
	s.pairs = nil
}

// Delete removes k's entry, if there is one.
func (s *Map[K, V]) Delete(k K) {
	if s.m != nil {
		delete(s.m, k)
		if len(s.m) == 0 {
			s.m = nil
		}
		return
	}
	for i := range s.pairs {
		if s.pairs[i].k == k {
			last := len(s.pairs) - 1
			s.pairs[i] = s.pairs[last]
			s.pairs[last] = pair[K, V]{} // no reference kept
			s.pairs = s.pairs[:last]
			if last == 0 {
				s.pairs = nil
			}
			return
		}
	}
}

// All returns the entries in no particular order. The Map must not be
// changed during the iteration.
func (s *Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		if s.m != nil {
			for k, v := range s.m {
				if !yield(k, v) {
					return
				}
			}
			return
		}
		for _, p := range s.pairs {
			if !yield(p.k, p.v) {
				return
			}
		}
	}
}
