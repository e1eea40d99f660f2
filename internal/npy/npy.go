// Package npy reads and writes NumPy's .npy files: a magic string, a version, a Python-dict
// header that gives the dtype and shape, then the raw little-endian data in C order. NumPy,
// and through it PyTorch and scikit-learn, read them directly.
package npy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Header is an array's dtype, as NumPy writes it ("<f4", "|i1" ...), and shape.
type Header struct {
	Descr string
	Shape []int
}

// Len is the number of elements.
func (h Header) Len() int {
	n := 1
	for _, d := range h.Shape {
		n *= d
	}
	return n
}

// WriteHeader writes the start of a .npy file, after which come the Len() elements.
func WriteHeader(w io.Writer, h Header) error {
	var shape string
	switch len(h.Shape) {
	case 0:
		shape = "()"
	case 1:
		shape = fmt.Sprintf("(%d,)", h.Shape[0])
	default:
		parts := make([]string, len(h.Shape))
		for i, d := range h.Shape {
			parts[i] = strconv.Itoa(d)
		}
		shape = "(" + strings.Join(parts, ", ") + ")"
	}
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", h.Descr, shape)
	// Pad so that the data starts at a multiple of 64 bytes, the header ending in a newline.
	total := 10 + len(dict) + 1
	dict += strings.Repeat(" ", (64-total%64)%64) + "\n"
	var buf bytes.Buffer
	buf.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&buf, binary.LittleEndian, uint16(len(dict)))
	buf.WriteString(dict)
	_, err := w.Write(buf.Bytes())
	return err
}

var (
	descrRE   = regexp.MustCompile(`'descr':\s*'([^']+)'`)
	fortranRE = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	shapeRE   = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

// ReadHeader reads the start of a .npy file in C order; the data follows. The descr is
// given with an explicit byte order ("=f4" and "<f4" both read as "<f4").
func ReadHeader(r io.Reader) (Header, error) {
	var pre [10]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return Header{}, fmt.Errorf("npy: %w", err)
	}
	if string(pre[:6]) != "\x93NUMPY" {
		return Header{}, fmt.Errorf("npy: not a .npy file")
	}
	var hlen int
	switch pre[6] {
	case 1:
		hlen = int(binary.LittleEndian.Uint16(pre[8:10]))
	case 2, 3:
		var rest [2]byte
		if _, err := io.ReadFull(r, rest[:]); err != nil {
			return Header{}, fmt.Errorf("npy: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint32(append(pre[8:10:10], rest[:]...)))
	default:
		return Header{}, fmt.Errorf("npy: version %d is not supported", pre[6])
	}
	raw := make([]byte, hlen)
	if _, err := io.ReadFull(r, raw); err != nil {
		return Header{}, fmt.Errorf("npy: %w", err)
	}
	dict := string(raw)
	m := descrRE.FindStringSubmatch(dict)
	if m == nil {
		return Header{}, fmt.Errorf("npy: no descr in header %q", dict)
	}
	h := Header{Descr: m[1]}
	if h.Descr[0] == '=' {
		h.Descr = "<" + h.Descr[1:]
	}
	if f := fortranRE.FindStringSubmatch(dict); f != nil && f[1] == "True" {
		return Header{}, fmt.Errorf("npy: Fortran order is not supported")
	}
	sm := shapeRE.FindStringSubmatch(dict)
	if sm == nil {
		return Header{}, fmt.Errorf("npy: no shape in header %q", dict)
	}
	for _, p := range strings.Split(sm[1], ",") {
		if p = strings.TrimSpace(p); p != "" {
			d, err := strconv.Atoi(p)
			if err != nil || d < 0 {
				return Header{}, fmt.Errorf("npy: bad shape %q", sm[1])
			}
			h.Shape = append(h.Shape, d)
		}
	}
	return h, nil
}

// Element is a Go type with a .npy dtype.
type Element interface {
	~float32 | ~float64 | ~int8 | ~int32 | ~int64 | ~uint8
}

// Descr is T's .npy dtype.
func Descr[T Element]() string {
	var v T
	switch any(v).(type) {
	case float32:
		return "<f4"
	case float64:
		return "<f8"
	case int8:
		return "|i1"
	case int32:
		return "<i4"
	case int64:
		return "<i8"
	default:
		return "|u1"
	}
}

// Write writes data, of the given shape, as a .npy file.
func Write[T Element](w io.Writer, shape []int, data []T) error {
	h := Header{Descr: Descr[T](), Shape: shape}
	if h.Len() != len(data) {
		return fmt.Errorf("npy: %d values for shape %v", len(data), shape)
	}
	if err := WriteHeader(w, h); err != nil {
		return err
	}
	// In pieces: binary.Write copies its whole argument first (10 GB for ImageNet features).
	for i := 0; i < len(data); i += chunk {
		if err := binary.Write(w, binary.LittleEndian, data[i:min(i+chunk, len(data))]); err != nil {
			return err
		}
	}
	return nil
}

// chunk is how many values Write and Read convert at a time.
const chunk = 1 << 20

// Read reads a .npy file of T elements and returns its shape and data.
func Read[T Element](r io.Reader) ([]int, []T, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, nil, err
	}
	if want := Descr[T](); h.Descr != want && !(len(want) == 3 && want[0] == '|' && h.Descr[1:] == want[1:]) {
		return nil, nil, fmt.Errorf("npy: the file holds %s, not %s", h.Descr, want)
	}
	data := make([]T, h.Len())
	for i := 0; i < len(data); i += chunk {
		if err := binary.Read(r, binary.LittleEndian, data[i:min(i+chunk, len(data))]); err != nil {
			return nil, nil, fmt.Errorf("npy: data: %w", err)
		}
	}
	return h.Shape, data, nil
}
