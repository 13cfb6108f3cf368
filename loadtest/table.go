package loadtest

import (
	"fmt"
	"io"
	"strings"
)

// Table is a table shaped like the paper's: a title, a header of column
// labels (publish intervals, or numbers of connections), and groups of
// rows, one row per series. Tables 1 and 2 have a group per cc; a table
// with one group may leave its label empty.
type Table struct {
	Title   string       `json:"title"`
	Columns []string     `json:"columns"`
	Groups  []TableGroup `json:"groups"`
	// Notes are printed under the table.
	Notes []string `json:"notes,omitempty"`
}

// TableGroup is a block of rows under a label such as "cc=100".
type TableGroup struct {
	Label string     `json:"label"`
	Rows  []TableRow `json:"rows"`
}

// TableRow is one series' cells, one per column.
type TableRow struct {
	Name  string   `json:"name"`
	Cells []string `json:"cells"`
}

// pivotTable builds a table from points: a group per value of group
// (in the order groups lists them), a row per series, a column per
// value of col, each cell cell(point); a missing point is "-" and a
// failed one "failed".
func pivotTable[G, C comparable](points []Point, title string, groups []G, groupLabel func(G) string,
	series []string, cols []C, colLabel func(C) string,
	groupOf func(Point) G, colOf func(Point) C, cell func(Point) string) Table {
	t := Table{Title: title}
	for _, c := range cols {
		t.Columns = append(t.Columns, colLabel(c))
	}
	for _, g := range groups {
		tg := TableGroup{Label: groupLabel(g)}
		for _, s := range series {
			row := TableRow{Name: s, Cells: make([]string, len(cols))}
			for i := range row.Cells {
				row.Cells[i] = "-"
			}
			for _, p := range points {
				if p.Series != s || groupOf(p) != g {
					continue
				}
				for i, c := range cols {
					if colOf(p) != c {
						continue
					}
					if p.OK() {
						row.Cells[i] = cell(p)
					} else {
						row.Cells[i] = "failed"
					}
				}
			}
			tg.Rows = append(tg.Rows, row)
		}
		t.Groups = append(t.Groups, tg)
	}
	return t
}

// WriteText writes the table with aligned columns, each group's label in
// the first cell of a header line above its rows, as the paper prints
// them.
func (t Table) WriteText(w io.Writer) error {
	width := make([]int, len(t.Columns)+1)
	for _, g := range t.Groups {
		width[0] = max(width[0], len(g.Label))
		for _, r := range g.Rows {
			width[0] = max(width[0], len(r.Name)+2)
			for i, c := range r.Cells {
				width[i+1] = max(width[i+1], len(c))
			}
		}
	}
	for i, c := range t.Columns {
		width[i+1] = max(width[i+1], len(c))
	}
	var b strings.Builder
	b.WriteString(t.Title + "\n")
	line := func(first string, cells []string) {
		fmt.Fprintf(&b, "%-*s", width[0], first)
		for i, c := range cells {
			fmt.Fprintf(&b, "  %*s", width[i+1], c)
		}
		b.WriteString("\n")
	}
	for _, g := range t.Groups {
		line(g.Label, t.Columns)
		for _, r := range g.Rows {
			line("  "+r.Name, r.Cells)
		}
	}
	for _, n := range t.Notes {
		b.WriteString("  " + n + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdown writes the table as a Markdown table for the README: with
// several groups their labels fill a first column, with one its label
// heads the column of series names.
func (t Table) WriteMarkdown(w io.Writer) error {
	grouped := len(t.Groups) > 1
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**\n\n", t.Title)
	first := ""
	if len(t.Groups) == 1 {
		first = t.Groups[0].Label
	}
	head := append([]string{first}, t.Columns...)
	if grouped {
		head = append([]string{""}, head...)
	}
	b.WriteString("| " + strings.Join(head, " | ") + " |\n|")
	for range head {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, g := range t.Groups {
		for _, r := range g.Rows {
			cells := append([]string{r.Name}, r.Cells...)
			if grouped {
				cells = append([]string{g.Label}, cells...)
			}
			b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
		}
	}
	for _, n := range t.Notes {
		b.WriteString("\n" + n + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
