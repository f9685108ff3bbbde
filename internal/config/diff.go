package config

import (
	"bytes"
	"fmt"
	"strings"
)

// diffContext is how many unchanged lines surround each change, as in
// diff -u.
const diffContext = 3

// maxLCSCells bounds the dynamic-programming table (4 bytes a cell): past
// it, after the common head and tail are cut off, the differing middle is
// shown as all removed and all added, which is correct, only less precise.
const maxLCSCells = 4 << 20

// UnifiedDiff is a unified line diff (diff -u style) from a to b, with
// --- and +++ headers naming them; "" when they are equal. A last line
// without a newline is marked "\ No newline at end of file", so the diff
// shows every byte that differs.
func UnifiedDiff(aName, bName string, a, b []byte) string {
	if bytes.Equal(a, b) {
		return ""
	}
	al, bl := splitLines(a), splitLines(b)
	ops := diffLines(al, bl)

	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", aName, bName)
	// Walk the edit script, cutting it into hunks around the changes.
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		// A hunk starts diffContext lines before this change and runs
		// until a stretch of more than 2*diffContext unchanged lines.
		start := max(0, i-diffContext)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*diffContext {
				end = min(end+diffContext, len(ops))
				break
			}
			end = run
		}
		writeHunk(&out, ops[start:end], al, bl)
		i = end
	}
	return out.String()
}

type diffOp struct {
	kind byte // ' ', '-', '+'
	a, b int  // line index in a (for ' ' and '-') and in b (for ' ' and '+')
}

func writeHunk(out *strings.Builder, ops []diffOp, al, bl []string) {
	// Line numbers: the first line of the hunk in each file, 1-based; for
	// an empty range, the line after which it sits (diff -u's rule).
	aStart, bStart, aLen, bLen := -1, -1, 0, 0
	aPos, bPos := ops[0].a, ops[0].b
	for _, op := range ops {
		if op.kind != '+' {
			if aStart < 0 {
				aStart = op.a
			}
			aLen++
		}
		if op.kind != '-' {
			if bStart < 0 {
				bStart = op.b
			}
			bLen++
		}
	}
	if aStart < 0 {
		aStart = aPos
	}
	if bStart < 0 {
		bStart = bPos
	}
	fmt.Fprintf(out, "@@ -%s +%s @@\n", hunkRange(aStart, aLen), hunkRange(bStart, bLen))
	for _, op := range ops {
		line := ""
		switch op.kind {
		case ' ', '-':
			line = al[op.a]
		case '+':
			line = bl[op.b]
		}
		out.WriteByte(op.kind)
		out.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			out.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

func hunkRange(start, n int) string {
	switch n {
	case 0:
		return fmt.Sprintf("%d,0", start)
	case 1:
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

// splitLines cuts s into lines, each keeping its "\n" (the last may lack it).
func splitLines(s []byte) []string {
	var lines []string
	for len(s) > 0 {
		i := bytes.IndexByte(s, '\n')
		if i < 0 {
			lines = append(lines, string(s))
			break
		}
		lines = append(lines, string(s[:i+1]))
		s = s[i+1:]
	}
	return lines
}

// diffLines is the edit script turning a into b, from a longest common
// subsequence of lines.
func diffLines(a, b []string) []diffOp {
	var ops []diffOp
	// Common head and tail cost nothing to find and shrink the table.
	head := 0
	for head < len(a) && head < len(b) && a[head] == b[head] {
		head++
	}
	tail := 0
	for tail < len(a)-head && tail < len(b)-head && a[len(a)-1-tail] == b[len(b)-1-tail] {
		tail++
	}
	for i := range head {
		ops = append(ops, diffOp{' ', i, i})
	}
	am, bm := a[head:len(a)-tail], b[head:len(b)-tail]
	n, m := len(am), len(bm)
	if n*m > maxLCSCells {
		for i := range n {
			ops = append(ops, diffOp{'-', head + i, head})
		}
		for j := range m {
			ops = append(ops, diffOp{'+', head + n, head + j})
		}
	} else {
		// lcs[i*(m+1)+j] is the LCS length of am[i:] and bm[j:].
		w := m + 1
		lcs := make([]int32, (n+1)*w)
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if am[i] == bm[j] {
					lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
				} else {
					lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && am[i] == bm[j]:
				ops = append(ops, diffOp{' ', head + i, head + j})
				i++
				j++
			case i < n && (j == m || lcs[(i+1)*w+j] >= lcs[i*w+j+1]):
				ops = append(ops, diffOp{'-', head + i, head + j})
				i++
			default:
				ops = append(ops, diffOp{'+', head + i, head + j})
				j++
			}
		}
	}
	for k := range tail {
		ops = append(ops, diffOp{' ', len(a) - tail + k, len(b) - tail + k})
	}
	return ops
}
