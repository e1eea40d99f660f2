//go:build cgo && (linux || darwin)

// Package jpegturbo decodes JPEG with libjpeg-turbo's TurboJPEG library, loaded at run time
// (dlopen), so that building needs no libjpeg headers and a machine without the library
// falls back to Go's decoder. With libjpeg-turbo's default accurate IDCT and fancy
// upsampling it decodes exactly as Pillow does (Pillow links the same library), and it can
// decode at 1/2, 1/4 or 1/8 scale in the DCT domain.
package jpegturbo

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

typedef void *tjhandle;

static void *gs_lib;
static tjhandle (*gs_init)(void);
static int (*gs_header)(tjhandle, const unsigned char *, unsigned long, int *, int *, int *, int *);
static int (*gs_decompress)(tjhandle, const unsigned char *, unsigned long, unsigned char *, int, int, int, int, int);
static int (*gs_destroy)(tjhandle);
static char *(*gs_error)(tjhandle);
static int (*gs_code)(tjhandle);

static int gs_load(void) {
	const char *names[] = {"libturbojpeg.so.0", "libturbojpeg.so", "libturbojpeg.0.dylib", "libturbojpeg.dylib", 0};
	for (int i = 0; names[i] && !gs_lib; i++) {
		gs_lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	}
	if (!gs_lib) {
		return 0;
	}
	gs_init = (tjhandle (*)(void))dlsym(gs_lib, "tjInitDecompress");
	gs_header = (int (*)(tjhandle, const unsigned char *, unsigned long, int *, int *, int *, int *))dlsym(gs_lib, "tjDecompressHeader3");
	gs_decompress = (int (*)(tjhandle, const unsigned char *, unsigned long, unsigned char *, int, int, int, int, int))dlsym(gs_lib, "tjDecompress2");
	gs_destroy = (int (*)(tjhandle))dlsym(gs_lib, "tjDestroy");
	gs_error = (char *(*)(tjhandle))dlsym(gs_lib, "tjGetErrorStr2");
	gs_code = (int (*)(tjhandle))dlsym(gs_lib, "tjGetErrorCode");
	return gs_init && gs_header && gs_decompress && gs_destroy && gs_error && gs_code;
}

static tjhandle gs_new(void) { return gs_init(); }
static void gs_free(tjhandle h) { gs_destroy(h); }
static const char *gs_err(tjhandle h) { return gs_error(h); }
// gs_fatal reports whether the last error was fatal (TJERR_FATAL = 1) rather than a warning
// about damaged data that libjpeg decoded anyway, as Pillow accepts.
static int gs_fatal(tjhandle h) { return gs_code(h) == 1; }
static int gs_size(tjhandle h, const unsigned char *buf, unsigned long n, int *w, int *ht) {
	int sub, cs;
	return gs_header(h, buf, n, w, ht, &sub, &cs);
}
// gs_rgb decodes to RGB, scaled to width x height (0 for the full size); TJPF_RGB = 0.
static int gs_rgb(tjhandle h, const unsigned char *buf, unsigned long n, unsigned char *dst, int width, int height) {
	return gs_decompress(h, buf, n, dst, width, 0, height, 0, 0);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unsafe"
)

var (
	loadOnce  sync.Once
	available bool
	handles   sync.Pool
)

// Available reports whether libturbojpeg could be loaded.
func Available() bool {
	loadOnce.Do(func() { available = C.gs_load() != 0 })
	return available
}

type handle struct{ h C.tjhandle }

func get() (*handle, error) {
	if !Available() {
		return nil, errors.New("libturbojpeg is not available")
	}
	if h, ok := handles.Get().(*handle); ok {
		return h, nil
	}
	h := C.gs_new()
	if h == nil {
		return nil, errors.New("tjInitDecompress failed")
	}
	return &handle{h}, nil
}

func (h *handle) err() error { return errors.New(C.GoString(C.gs_err(h.h))) }

// put returns a handle to the pool, or frees it after an error: TurboJPEG can leave a
// handle that failed on damaged data in a state where its next header read reports 0x0.
func put(h *handle, failed bool) {
	if failed {
		C.gs_free(h.h)
		return
	}
	handles.Put(h)
}

// size reads a JPEG's width and height with a handle from get.
func (h *handle) size(data []byte) (int, int, error) {
	var cw, ch C.int
	if C.gs_size(h.h, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), &cw, &ch) != 0 {
		return 0, 0, h.err()
	}
	if cw <= 0 || ch <= 0 || int64(cw)*int64(ch) > 1<<30 {
		return 0, 0, fmt.Errorf("a JPEG of %dx%d pixels", int(cw), int(ch))
	}
	return int(cw), int(ch), nil
}

// Size reads the width and height from a JPEG's header.
func Size(data []byte) (w, h int, err error) {
	if len(data) == 0 {
		return 0, 0, errors.New("empty JPEG")
	}
	hd, err := get()
	if err != nil {
		return 0, 0, err
	}
	w, h, err = hd.size(data)
	put(hd, err != nil)
	return w, h, err
}

// Decode decodes a JPEG to RGB pixels, at 1/denom of its size (denom 1, 2, 4 or 8; the
// sizes round up, as libjpeg's do).
func Decode(data []byte, denom int) (pix []byte, w, h int, err error) {
	return DecodeInto(nil, data, denom)
}

// DecodeInto is Decode into a buffer from alloc(n) (n bytes of any contents), or a new one
// when alloc is nil.
func DecodeInto(alloc func(n int) []byte, data []byte, denom int) (pix []byte, w, h int, err error) {
	if denom != 1 && denom != 2 && denom != 4 && denom != 8 {
		return nil, 0, 0, fmt.Errorf("scale 1/%d: use 1, 2, 4 or 8", denom)
	}
	if len(data) == 0 {
		return nil, 0, 0, errors.New("empty JPEG")
	}
	hd, err := get()
	if err != nil {
		return nil, 0, 0, err
	}
	failed := true
	defer func() { put(hd, failed) }()
	fw, fh, err := hd.size(data)
	if err != nil {
		return nil, 0, 0, err
	}
	w, h = (fw+denom-1)/denom, (fh+denom-1)/denom
	if alloc != nil {
		pix = alloc(w * h * 3)
	} else {
		pix = make([]byte, w*h*3)
	}
	if C.gs_rgb(hd.h, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), (*C.uchar)(unsafe.Pointer(&pix[0])), C.int(w), C.int(h)) != 0 {
		// libjpeg decodes damaged data with a warning, and Pillow accepts the result, but
		// for a truncated file, which Pillow refuses ("image file is truncated").
		if err := hd.err(); C.gs_fatal(hd.h) != 0 || strings.Contains(err.Error(), "Premature end") {
			return nil, 0, 0, err
		}
		return pix, w, h, nil // the handle saw damaged data: free it
	}
	failed = false
	return pix, w, h, nil
}
