package projection

import "strings"

// RowsPerStatement is how many rows a MultiRow statement writes at once:
// beyond a few dozen the per-statement cost (a cgo call, binding, a
// database/sql round) is already negligible, and the bound variables stay
// far below SQLite's limit (32766) for the widest read-model row.
const RowsPerStatement = 64

// MultiRow is one INSERT statement for one row (One) and for
// RowsPerStatement rows (Many): the way projectors that hold a batch's
// writes back (TxFlusher) write them, several rows per statement.
type MultiRow struct {
	One, Many string
}

// NewMultiRow builds the statements head VALUES (?, ...)[, ...] tail for
// rows of cols values.
func NewMultiRow(head string, cols int, tail string) MultiRow {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return MultiRow{
		One:  head + " VALUES" + row + " " + tail,
		Many: head + " VALUES" + strings.TrimSuffix(strings.Repeat(row+", ", RowsPerStatement), ", ") + " " + tail,
	}
}

// Chunks splits n rows into statements, in order: Many for each
// RowsPerStatement rows, then One for each row left. run executes query
// for rows [first, first+count) and stops the split with an error.
func (q MultiRow) Chunks(n int, run func(query string, first, count int) error) error {
	for first := 0; first < n; {
		count, query := 1, q.One
		if n-first >= RowsPerStatement {
			count, query = RowsPerStatement, q.Many
		}
		if err := run(query, first, count); err != nil {
			return err
		}
		first += count
	}
	return nil
}
