package channel

import "slices"

// Pos is one origin's position: the timestamp of the last message of that
// origin a reader has covered.
type Pos struct {
	Origin uint64
	TS     Timestamp
}

// Vector holds at most one Pos per origin, sorted by origin. PushUp clusters
// have a handful of origins (one per node and boot), so lookups are linear
// scans over a short slice, which beats a map at this size. The zero value is
// an empty vector.
type Vector []Pos

// Get returns the position of origin and whether the vector has one.
func (v Vector) Get(origin uint64) (Timestamp, bool) {
	for _, p := range v {
		if p.Origin == origin {
			return p.TS, true
		}
		if p.Origin > origin {
			break
		}
	}
	return 0, false
}

// With returns a copy of v in which origin's position is at least ts.
func (v Vector) With(origin uint64, ts Timestamp) Vector {
	i, found := slices.BinarySearchFunc(v, origin, func(p Pos, o uint64) int {
		switch {
		case p.Origin < o:
			return -1
		case p.Origin > o:
			return 1
		}
		return 0
	})
	out := make(Vector, len(v), len(v)+1)
	copy(out, v)
	if found {
		out[i].TS = max(out[i].TS, ts)
		return out
	}
	return slices.Insert(out, i, Pos{Origin: origin, TS: ts})
}

// Max returns the pointwise maximum of a and b: every origin of either, at
// the later of its two positions.
func Max(a, b Vector) Vector {
	out := make(Vector, 0, max(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].Origin < b[j].Origin):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].Origin < a[i].Origin:
			out = append(out, b[j])
			j++
		default:
			out = append(out, Pos{Origin: a[i].Origin, TS: max(a[i].TS, b[j].TS)})
			i++
			j++
		}
	}
	return out
}

// Covers reports whether v is at or beyond w for every origin of w.
func (v Vector) Covers(w Vector) bool {
	for _, p := range w {
		ts, ok := v.Get(p.Origin)
		if !ok || ts < p.TS {
			return false
		}
	}
	return true
}

// Valid reports whether v is sorted by origin with no origin twice.
func (v Vector) Valid() bool {
	for i := 1; i < len(v); i++ {
		if v[i-1].Origin >= v[i].Origin {
			return false
		}
	}
	return true
}
