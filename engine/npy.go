package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// The .npy format (NumPy's): a magic string, a version, a Python-dict header that gives the
// dtype and shape, then the raw little-endian data in C order. NumPy, and through it PyTorch,
// read it directly.

var npyDescr = map[dtypes.DType]string{
	dtypes.Float32: "<f4", dtypes.Float64: "<f8", dtypes.Int32: "<i4", dtypes.Int64: "<i8",
	dtypes.Uint8: "|u1", dtypes.Uint32: "<u4", dtypes.Uint64: "<u8", dtypes.Bool: "|b1",
}

// WriteNPY writes t as a .npy file.
func WriteNPY(w io.Writer, t *tensors.Tensor) error {
	descr, ok := npyDescr[t.DType()]
	if !ok {
		return fmt.Errorf("npy: dtype %s is not supported", t.DType())
	}
	dims := t.Shape().Dimensions
	var shape string
	switch len(dims) {
	case 0:
		shape = "()"
	case 1:
		shape = fmt.Sprintf("(%d,)", dims[0])
	default:
		parts := make([]string, len(dims))
		for i, d := range dims {
			parts[i] = strconv.Itoa(d)
		}
		shape = "(" + strings.Join(parts, ", ") + ")"
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape)
	// Pad so that the data starts at a multiple of 64 bytes, the header ending in a newline.
	total := 10 + len(header) + 1
	header += strings.Repeat(" ", (64-total%64)%64) + "\n"
	var buf bytes.Buffer
	buf.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&buf, binary.LittleEndian, uint16(len(header)))
	buf.WriteString(header)
	if _, err := w.Write(buf.Bytes()); err != nil {
		return err
	}
	var werr error
	err := t.ConstBytes(func(data []byte) { _, werr = w.Write(data) })
	if err != nil {
		return err
	}
	return werr
}

var (
	npyDescrRE   = regexp.MustCompile(`'descr':\s*'([^']+)'`)
	npyFortranRE = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	npyShapeRE   = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

// ReadNPY reads a .npy file in C order.
func ReadNPY(r io.Reader) (*tensors.Tensor, error) {
	var pre [10]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	if string(pre[:6]) != "\x93NUMPY" {
		return nil, fmt.Errorf("npy: not a .npy file")
	}
	var hlen int
	switch pre[6] {
	case 1:
		hlen = int(binary.LittleEndian.Uint16(pre[8:10]))
	case 2, 3:
		var rest [2]byte
		if _, err := io.ReadFull(r, rest[:]); err != nil {
			return nil, fmt.Errorf("npy: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint32(append(pre[8:10:10], rest[:]...)))
	default:
		return nil, fmt.Errorf("npy: version %d is not supported", pre[6])
	}
	header := make([]byte, hlen)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	h := string(header)
	m := npyDescrRE.FindStringSubmatch(h)
	if m == nil {
		return nil, fmt.Errorf("npy: no descr in header %q", h)
	}
	var dtype dtypes.DType
	for dt, d := range npyDescr {
		if d == m[1] || d[1:] == m[1][1:] && (m[1][0] == '=' || m[1][0] == '<') {
			dtype = dt
		}
	}
	if dtype == dtypes.InvalidDType {
		return nil, fmt.Errorf("npy: dtype %s is not supported", m[1])
	}
	if f := npyFortranRE.FindStringSubmatch(h); f != nil && f[1] == "True" {
		return nil, fmt.Errorf("npy: Fortran order is not supported")
	}
	sm := npyShapeRE.FindStringSubmatch(h)
	if sm == nil {
		return nil, fmt.Errorf("npy: no shape in header %q", h)
	}
	var dims []int
	for _, p := range strings.Split(sm[1], ",") {
		if p = strings.TrimSpace(p); p != "" {
			d, err := strconv.Atoi(p)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("npy: bad shape %q", sm[1])
			}
			dims = append(dims, d)
		}
	}
	t := tensors.FromShape(shapes.Make(dtype, dims...))
	var rerr error
	if err := t.MutableBytes(func(data []byte) { _, rerr = io.ReadFull(r, data) }); err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, fmt.Errorf("npy: data: %w", rerr)
	}
	return t, nil
}
