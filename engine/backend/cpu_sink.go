package backend

import (
	"maps"
	"slices"
	"strings"
)

// Scatters into a graph parameter run last. The pure-Go backend's Scatter writes into its
// operand's buffer when it may (the buffer is donated to the piece), and copies it otherwise.
// A scatter is recorded in the earliest piece where its inputs are available, so an update
// of a parameter that host steps read afterwards, such as NPID's memory bank, which the head's
// gradient reads after the bank's update was recorded, would copy the whole parameter at
// every execution (25 MB for the train-step benchmark's bank, 650 MB for ImageNet's). Moving
// such scatters, with the scatters that read them, to the last piece, after every host step,
// lets that piece take the parameter's buffer when the caller donates it, as GoMLX does for
// the variables a graph updates.

// sinkScatters moves each live Scatter* node whose operand is a graph parameter, or the
// output of such a scatter, to the last piece, when nothing but nodes of the last piece
// (moved ones included) and the graph's outputs read it.
func (b *cpuBuilder) sinkScatters() {
	last := len(b.steps)
	readers := map[*value][]*node{}
	stepRead := map[*value]bool{}
	for _, n := range b.nodes {
		if n.live {
			for _, vs := range n.inputs {
				for _, v := range vs {
					readers[v] = append(readers[v], n)
				}
			}
		}
	}
	for _, st := range b.steps {
		if st.live {
			for _, v := range st.inputs {
				stepRead[v] = true
			}
		}
	}
	// Candidates: live scatters into a parameter, directly or through candidates.
	candidate := map[*node]bool{}
	for _, n := range b.nodes {
		if !n.live || !strings.HasPrefix(n.op, "Scatter") || len(n.inputs) == 0 || len(n.inputs[0]) == 0 {
			continue
		}
		operand := n.inputs[0][0]
		candidate[n] = operand.param >= 0 || (operand.node != nil && candidate[operand.node])
	}
	// Readers come after what they read: deciding from the last node to the first decides
	// each node's readers first.
	sunk := map[*node]bool{}
	for i := len(b.nodes) - 1; i >= 0; i-- {
		n := b.nodes[i]
		if !candidate[n] || n.piece == last {
			continue
		}
		ok := true
		for _, v := range n.outs {
			if stepRead[v] {
				ok = false
			}
			for _, r := range readers[v] {
				if r.piece != last && !sunk[r] {
					ok = false
				}
			}
		}
		sunk[n] = ok
	}
	if !slices.Contains(slices.Collect(maps.Values(sunk)), true) {
		return
	}
	p := b.pieceAt(last)
	for _, n := range b.nodes {
		if !sunk[n] {
			continue
		}
		old := b.pieces[n.piece]
		if i := indexOf(old.nodes, n); i >= 0 {
			old.nodes = append(old.nodes[:i], old.nodes[i+1:]...)
		}
		n.piece = last
		for _, v := range n.outs {
			v.piece = last
		}
		p.nodes = append(p.nodes, n)
	}
}

func indexOf(ns []*node, n *node) int {
	for i, m := range ns {
		if m == n {
			return i
		}
	}
	return -1
}
