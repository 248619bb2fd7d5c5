package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// pieceParser parses the records of one piece into its table.
type pieceParser struct {
	src  *textSource
	buf  []byte
	p    piece
	row  int   // local row of p.t being parsed
	base int64 // file offset of buf[0]
	rec  csvRecords
	y    float64
	vals []float64 // the fields of one record (fast path)
}

// run parses the records of r, which holds the bytes of p.
func (pp *pieceParser) run(ctx context.Context, r io.Reader, p piece) error {
	pp.p, pp.row, pp.base = p, p.first, p.off
	pp.buf = pp.buf[:0]
	pp.rec.cols = pp.src.cols
	atEOF := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Fill the free end of the buffer.
		if !atEOF {
			if len(pp.buf) == cap(pp.buf) {
				pp.buf = append(pp.buf, 0)[:len(pp.buf)] // grow: a record longer than the buffer
			}
			n, err := io.ReadFull(r, pp.buf[len(pp.buf):cap(pp.buf)])
			pp.buf = pp.buf[:len(pp.buf)+n]
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				atEOF = true
			} else if err != nil {
				return fmt.Errorf("%s: %w", pp.src.files[p.file].path, err)
			}
		}
		used, err := pp.records(atEOF)
		if err != nil {
			return err
		}
		if atEOF {
			if pp.row != p.first+p.rows {
				return fmt.Errorf("%s: bytes %d..%d hold %d rows, %d when indexed: the file changed", pp.src.files[p.file].path, p.off, p.end, pp.row-p.first, p.rows)
			}
			return nil
		}
		pp.base += int64(used)
		pp.buf = pp.buf[:copy(pp.buf, pp.buf[used:])]
	}
}

// runMapped parses the records of p from windows of the mapped file.
func (pp *pieceParser) runMapped(ctx context.Context, path string, p piece) (err error) {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	debug.SetPanicOnFault(true)
	defer catchFault(path, &err)
	pp.p, pp.row = p, p.first
	pp.rec.cols = pp.src.cols
	win := int64(mapWindow)
	for off := p.off; ; {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(p.end, off+win)
		b, unmap, err := mapRange(fh, off, end)
		if err != nil {
			return err
		}
		pp.buf, pp.base = b, off
		used, err := pp.records(end == p.end)
		unmap()
		pp.buf = nil
		switch {
		case err != nil:
			return err
		case end == p.end:
			if pp.row != p.first+p.rows {
				return fmt.Errorf("%s: bytes %d..%d hold %d rows, %d when indexed: the file changed", path, p.off, p.end, pp.row-p.first, p.rows)
			}
			return nil
		case used == 0:
			win *= 2 // a record longer than the window
		default:
			off += int64(used)
		}
	}
}

// records parses the whole records at the start of pp.buf and returns how
// many bytes they took.
func (pp *pieceParser) records(atEOF bool) (int, error) {
	b, p := pp.buf, 0
	for {
		q, err := skipBlank(b, p, atEOF)
		if err == errNeedMore || q == len(b) {
			return p, nil
		}
		next, err := pp.src.parse(pp, b[q:], atEOF)
		if err == errNeedMore {
			return p, nil
		}
		if err == errNoRow {
			p = q + next
			continue
		}
		if err != nil {
			return 0, pp.fail(b, q, err)
		}
		pp.row++
		p = q + next
	}
}

// full returns an error when the piece already holds all its rows: a parse
// function calls it before it writes a row.
func (pp *pieceParser) full() error {
	if pp.row < pp.p.first+pp.p.rows {
		return nil
	}
	return fmt.Errorf("%s: bytes %d..%d hold more than %d rows, the number when indexed: the file changed", pp.src.files[pp.p.file].path, pp.p.off, pp.p.end, pp.p.rows)
}

// fail turns an error in the record at b[q:] into one that names the file,
// line and column.
func (pp *pieceParser) fail(b []byte, q int, err error) error {
	path := pp.src.files[pp.p.file].path
	var re *recordError
	if errors.As(err, &re) {
		line := pp.src.lineAt(pp.p.file, pp.base+int64(q+re.pos))
		return fmt.Errorf("%s:%d: %w", path, line, re.err)
	}
	return err
}
