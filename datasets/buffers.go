package datasets

import (
	"math/bits"
	"sync"
)

// Image buffers are recycled by size class (powers of two), as Pillow keeps a pool of image
// blocks: a sample's decoded photo, its resampling's intermediate and its final view are the
// largest allocations of a pipeline, and training makes them thousands of times a second.
// A sample owns its image (sources hand out copies), so a transform that replaces the image
// recycles the old one, and the loader recycles every image once it is packed.
var buffers [bits.UintSize]sync.Pool

// getBuffer returns n bytes of undefined contents.
func getBuffer(n int) []uint8 {
	if n <= 0 {
		return nil
	}
	c := bits.Len(uint(n - 1))
	if b, ok := buffers[c].Get().(*[]uint8); ok {
		return (*b)[:n]
	}
	return make([]uint8, n, 1<<c)
}

// putBuffer recycles a buffer that nothing references any more; one that getBuffer did not
// make is left to the garbage collector.
func putBuffer(b []uint8) {
	c := cap(b)
	if c == 0 || c&(c-1) != 0 {
		return
	}
	b = b[:0]
	buffers[bits.Len(uint(c-1))].Put(&b)
}

// newImage returns a w x h image of undefined pixels, for code that writes every byte.
func newImage(w, h int) Image { return Image{Width: w, Height: h, Pix: getBuffer(w * h * 3)} }

// setImage replaces the sample's image and recycles the old one.
func (s *Sample) setImage(m Image) {
	putBuffer(s.Image.Pix)
	s.Image = m
}
