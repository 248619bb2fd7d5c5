package data

import (
	"hash/fnv"
	"slices"
)

// Spread is the shards one member of a ring owns under Sharding.Spread.
type Spread struct {
	Rank   int
	owns   []bool // by shard
	shards []int
	rows   int
}

// OwnsShard reports whether the member owns shard v.
func (p Spread) OwnsShard(v int) bool { return v >= 0 && v < len(p.owns) && p.owns[v] }

// Shards returns the member's shards, ascending.
func (p Spread) Shards() []int { return p.shards }

// Len returns the number of rows the member owns.
func (p Spread) Len() int { return p.rows }

// Spread assigns the shards to the members of a ring, given by stable
// names in rank order (a process's host and slot: the same after a restart
// or -resume), so that losing a member moves only that member's shards, and
// spreads them over the survivors; a member that joins takes about 1/n of
// everyone's. Each shard goes to the member that ranks it highest
// (rendezvous hashing of shard and name), unless that member already holds
// its share: then to the next. So every member owns floor(V/n) or
// floor(V/n)+1 shards, and the assignment depends on the names alone, never
// on which member was lost before.
//
//	parts := s.Spread([]string{"h1/0", "h1/1", "h2/0"})
//	tables, err := src.ReadShards(ctx, parts[rank].Shards())
func (s Sharding) Spread(members []string) []Spread {
	n, V := len(members), s.Shards()
	parts := make([]Spread, n)
	for r := range parts {
		parts[r] = Spread{Rank: r, owns: make([]bool, V)}
	}
	if n == 0 {
		return parts
	}
	seeds := make([]uint64, n)
	for r, m := range members {
		h := fnv.New64a()
		h.Write([]byte(m))
		seeds[r] = h.Sum64()
	}
	order := make([]int, n)
	score := make([]uint64, n)
	rank := func(v int) []int { // the members by their score for shard v, best first
		for r := range order {
			order[r], score[r] = r, mix(seeds[r]^mix(uint64(v)+0x9e37))
		}
		slices.SortFunc(order, func(a, b int) int {
			switch {
			case score[a] > score[b]:
				return -1
			case score[a] < score[b]:
				return 1
			}
			return a - b
		})
		return order
	}
	give := func(v, capacity int) bool {
		for _, r := range rank(v) {
			if len(parts[r].shards) < capacity {
				parts[r].shards = append(parts[r].shards, v)
				parts[r].owns[v] = true
				lo, hi := s.ShardRows(v)
				parts[r].rows += hi - lo
				return true
			}
		}
		return false
	}
	// First every member takes up to floor(V/n) shards; the V mod n left
	// over go one each to the members that rank them highest.
	var left []int
	for v := range V {
		if !give(v, V/n) {
			left = append(left, v)
		}
	}
	for _, v := range left {
		give(v, V/n+1)
	}
	for r := range parts {
		slices.Sort(parts[r].shards)
	}
	return parts
}
