package datasets

import "math"

// OpenCV's cv::resize of 8-bit images, which mmcv's imresize calls with its default backend
// "cv2": segmentation pipelines (mmseg's Resize and RandomResize) resample with it.

const cvResizeCoefScale = 2048 // INTER_RESIZE_COEF_SCALE

// cvLinearTaps are cv::resize's INTER_LINEAR source indices and fixed-point weights along one
// axis: the source coordinate (dst + 0.5) * scale - 0.5 in double, stored as a float, its
// floor and fraction; weights (1 - f) * 2048 and f * 2048, rounded to even. clamp clips the
// index and zeroes the fraction outside the source, as OpenCV does along x (along y it
// clips the rows instead, to the same effect).
func cvLinearTaps(src, dst int) (idx []int, w0, w1 []int32) {
	scale := 1 / (float64(dst) / float64(src))
	idx = make([]int, dst)
	w0, w1 = make([]int32, dst), make([]int32, dst)
	for d := range dst {
		f := float32((float64(d)+0.5)*scale - 0.5)
		s := int(math.Floor(float64(f)))
		f -= float32(s)
		if s < 0 {
			s, f = 0, 0
		}
		if s >= src-1 {
			s, f = src-1, 0
		}
		idx[d] = s
		w0[d] = int32(math.RoundToEven(float64(float32(1-f) * cvResizeCoefScale)))
		w1[d] = int32(math.RoundToEven(float64(f * cvResizeCoefScale)))
	}
	return idx, w0, w1
}

// resizeLinearCV is cv::resize(INTER_LINEAR) of an 8-bit RGB image, in OpenCV's fixed point:
// a horizontal pass in int32, then the vertical pass of its vectorised kernel,
// (((r0 >> 4) * b0 >> 16) + ((r1 >> 4) * b1 >> 16) + 2) >> 2; equal to cv2.resize of OpenCV
// 4.6 on every pixel of the images tried (up and down, odd sizes). An exact halving of both
// sides is INTER_AREA's 2x2 mean, as OpenCV substitutes it.
func (m Image) resizeLinearCV(w, h int) Image {
	if w == m.Width && h == m.Height {
		out := newImage(w, h)
		copy(out.Pix, m.Pix)
		return out
	}
	out := newImage(w, h)
	if m.Width == 2*w && m.Height == 2*h {
		n := m.Width * 3
		for y := range h {
			r0, r1 := m.Pix[2*y*n:], m.Pix[(2*y+1)*n:]
			o := out.Pix[y*w*3:]
			for x := range w * 3 {
				k := x/3*6 + x%3
				o[x] = uint8((int(r0[k]) + int(r0[k+3]) + int(r1[k]) + int(r1[k+3]) + 2) >> 2)
			}
		}
		return out
	}
	xs, a0, a1 := cvLinearTaps(m.Width, w)
	ys, b0, b1 := cvLinearTaps(m.Height, h)
	// Along y OpenCV keeps the fraction at the edges and clips the second row instead.
	yScale := 1 / (float64(h) / float64(m.Height))
	for d := range h {
		f := float32((float64(d)+0.5)*yScale - 0.5)
		s := int(math.Floor(float64(f)))
		f -= float32(s)
		ys[d] = s
		b0[d] = int32(math.RoundToEven(float64(float32(1-f) * cvResizeCoefScale)))
		b1[d] = int32(math.RoundToEven(float64(f * cvResizeCoefScale)))
	}
	rowCache := map[int][]int32{}
	row := func(sy int) []int32 {
		sy = min(max(sy, 0), m.Height-1)
		if r, ok := rowCache[sy]; ok {
			return r
		}
		src := m.Pix[sy*m.Width*3 : (sy+1)*m.Width*3]
		r := make([]int32, w*3)
		for x := range w {
			s, s1 := xs[x]*3, xs[x]*3+3
			if xs[x]+1 >= m.Width { // the second tap's weight is 0 there
				s1 = s
			}
			for c := range 3 {
				r[x*3+c] = int32(src[s+c])*a0[x] + int32(src[s1+c])*a1[x]
			}
		}
		if len(rowCache) > 4 {
			clear(rowCache)
		}
		rowCache[sy] = r
		return r
	}
	for y := range h {
		r0, r1 := row(ys[y]), row(ys[y]+1)
		o := out.Pix[y*w*3 : (y+1)*w*3]
		for i := range o {
			v := (((r0[i]>>4)*b0[y])>>16 + ((r1[i]>>4)*b1[y])>>16 + 2) >> 2
			o[i] = clip8(int(v))
		}
	}
	return out
}

// resizeNearestCV is cv::resize(INTER_NEAREST) of an 8-bit RGB image (as Mask.ResizeNearest).
func (m Image) resizeNearestCV(w, h int) Image {
	out := newImage(w, h)
	xs, ys := nearestIndices(m.Width, w), nearestIndices(m.Height, h)
	for y, sy := range ys {
		src, dst := m.Pix[sy*m.Width*3:], out.Pix[y*w*3:]
		for x, sx := range xs {
			copy(dst[x*3:x*3+3], src[sx*3:sx*3+3])
		}
	}
	return out
}
