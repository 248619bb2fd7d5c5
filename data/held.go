package data

import (
	"context"
	"fmt"
	"slices"
)

// Held is the part of a data set one node holds: one Table per virtual shard
// it owns. When the ring changes, Keep drops the shards the node no longer
// owns and Add takes the ones newly read; the rest stay where they are.
//
//	h := data.NewHeld(src.Sharding())
//	tables, err := src.ReadShards(ctx, part.Shards())
//	err = h.Add(tables)
//	err = h.Batch(batch, part.OwnsShard, &b) // this node's rows of a global batch, by shard
type Held struct {
	s      Sharding
	tables []*Table // by shard; nil where not held
	rows   int
}

// NewHeld returns an empty Held for the shards of s.
func NewHeld(s Sharding) *Held {
	return &Held{s: s, tables: make([]*Table, s.Shards())}
}

// Sharding returns the sharding the held tables belong to.
func (h *Held) Sharding() Sharding { return h.s }

// Len returns the number of rows held.
func (h *Held) Len() int { return h.rows }

// Has reports whether shard v is held.
func (h *Held) Has(v int) bool { return h.tables[v] != nil }

// Add takes tables, each exactly one virtual shard of the sharding.
func (h *Held) Add(tables []*Table) error {
	for _, t := range tables {
		v := h.s.ShardOfTable(t)
		if v < 0 {
			return fmt.Errorf("data: a table of rows %d..%d is not one virtual shard", t.First, t.First+t.Len()-1)
		}
		if h.tables[v] != nil {
			h.rows -= h.tables[v].Len()
		}
		h.tables[v] = t
		h.rows += t.Len()
	}
	return nil
}

// Keep drops every held shard for which keep(v) is false.
func (h *Held) Keep(keep func(v int) bool) {
	for v, t := range h.tables {
		if t != nil && !keep(v) {
			h.rows -= t.Len()
			h.tables[v] = nil
		}
	}
}

// Missing returns the shards for which want(v) is true that are not held.
func (h *Held) Missing(want func(v int) bool) []int {
	var m []int
	for v, t := range h.tables {
		if t == nil && want(v) {
			m = append(m, v)
		}
	}
	return m
}

// Tables returns the held tables in shard order.
func (h *Held) Tables() []*Table {
	var ts []*Table
	for _, t := range h.tables {
		if t != nil {
			ts = append(ts, t)
		}
	}
	return ts
}

// Bytes returns the bytes the held values take in memory.
func (h *Held) Bytes() int64 {
	var n int64
	for _, t := range h.tables {
		if t != nil {
			n += t.Bytes()
		}
	}
	return n
}

// Group is the rows of one table that a batch uses: local indices into T,
// ascending.
type Group struct {
	T    *Table
	Rows []int
}

// Batch is a node's share of a global batch, grouped by shard. Reuse one
// across steps: Held.Batch allocates only while its buffers grow.
type Batch struct {
	Groups []Group
	rows   []int // the global rows, then local indices, of all groups
}

// Len returns the number of rows in the batch.
func (b *Batch) Len() int { return len(b.rows) }

// Batch writes into b the rows of batch (global indices) that h holds, shard
// by shard and in row order within a shard: the order in which the gradients
// must be summed. A row of a shard the node owns but does not hold is an
// error; owns(v) says which shards those are.
func (h *Held) Batch(batch []int, owns func(v int) bool, b *Batch) error {
	b.rows = b.rows[:0]
	for _, row := range batch {
		v := h.s.ShardOf(row)
		if h.tables[v] != nil {
			b.rows = append(b.rows, row)
		} else if owns(v) {
			return fmt.Errorf("data: row %d is in shard %d, which this node owns but does not hold", row, v)
		}
	}
	slices.Sort(b.rows)
	b.Groups = b.Groups[:0]
	for i := 0; i < len(b.rows); {
		v := h.s.ShardOf(b.rows[i])
		t := h.tables[v]
		end := t.First + t.Len()
		j := i
		for ; j < len(b.rows) && b.rows[j] < end; j++ {
			b.rows[j] -= t.First
		}
		b.Groups = append(b.Groups, Group{T: t, Rows: b.rows[i:j:j]})
		i = j
	}
	return nil
}

// ReadPart reads the shards of part from src into a new Held.
//
//	h, err := data.ReadPart(ctx, src, src.Sharding().Part(rank, nodes))
func ReadPart(ctx context.Context, src Source, part Part) (*Held, error) {
	tables, err := src.ReadShards(ctx, part.Shards())
	if err != nil {
		return nil, err
	}
	h := NewHeld(src.Sharding())
	return h, h.Add(tables)
}
