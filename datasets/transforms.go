package datasets

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/goselfsup/goselfsup/registry"
)

// Sample is one item of a dataset on its way through a pipeline.
type Sample struct {
	Image Image
	Label int    // -1 when the dataset has no labels
	Index int    // the sample's position in its dataset: mmengine's sample_idx
	Path  string // the image file, for datasets of files
	// Targets are per-class labels of multi-label datasets (VOC: 1 present, 0 difficult
	// only, -1 absent); nil otherwise.
	Targets []int8

	// Seg says where a segmentation dataset's mask of the sample is and how to read it;
	// LoadAnnotations reads it into Mask. nil for other datasets.
	Seg *SegMapInfo
	// Mask is the sample's per-pixel class map (mmseg's gt_seg_map), 255 or the dataset's
	// ignore_index where unlabelled; nil until LoadAnnotations, and for other datasets.
	// Geometric transforms that are mask-aware (Resize, RandomResize, RandomCrop,
	// RandomFlip, Pad) change it with the image.
	Mask *Mask
	// OriHeight and OriWidth are the image's size as decoded (mmcv's ori_shape), set by
	// LoadImageFromFile; 0 for datasets that hold images in memory.
	OriHeight, OriWidth int
	// PadHeight and PadWidth are the image's size before Pad (mmcv's img_shape, the part
	// that is not padding); 0 when Pad did not run.
	PadHeight, PadWidth int

	// Det is the box annotation a detection dataset (VOCDataset) gives the sample, mmdet
	// 2.x's ann_info, in the coordinates of the image as decoded. The dataset shares it:
	// it is read-only. nil for other datasets.
	Det *DetAnnotation
	// GT are the sample's ground truth boxes and labels, and its ignored boxes, in the
	// coordinates of the current image (mmdet's gt_bboxes, gt_labels, gt_bboxes_ignore):
	// LoadAnnotations (with_bbox) copies Det here, and Resize, RandomResize and RandomFlip
	// move the boxes with the image. nil until then, and for other datasets.
	GT *DetAnnotation
	// GTMasks are the instance masks of GT.Boxes, in their order, at the current image's
	// size (mmdet's gt_masks): LoadAnnotations (with_mask) decodes them, and Resize,
	// RandomResize, RandomFlip and Pad move them with the image. nil without with_mask.
	GTMasks *InstanceMasks
	// ScaleW and ScaleH are mmdet's scale_factor: the resized image's width and height over
	// the decoded ones (new_w / w as float32), set by Resize and RandomResize on detection
	// samples; 0 when no resize ran (a factor of 1).
	ScaleW, ScaleH float32
	// MaxGT is the number of box slots of the sample in its batch (DetBatch.MaxGT), set by
	// PackDetInputs (or Collect); 0: DefaultMaxGT.
	MaxGT int
}

// isDet reports that s is a detection sample.
func (s *Sample) isDet() bool { return s.Det != nil || s.GT != nil }

// Transform changes a sample. rng is the sample's own random source, derived from the run's
// seed, the epoch and the sample's index, so that a pipeline's randomness does not depend on
// which worker runs it.
type Transform interface {
	Apply(s *Sample, rng *rand.Rand) error
}

// TransformFunc adapts a function to Transform.
type TransformFunc func(s *Sample, rng *rand.Rand) error

func (f TransformFunc) Apply(s *Sample, rng *rand.Rand) error { return f(s, rng) }

// pyRound rounds half to even, as Python's round does.
func pyRound(x float64) int { return int(math.RoundToEven(x)) }

func uniform(rng *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }

// Pair is a size written as one number (both sides) or as two; each transform says which
// order its two numbers take, as mmcv does.
type Pair [2]int

// TOMLType says what a Pair takes, for print_config --describe.
func (Pair) TOMLType() string { return "int or array of 2 int" }

func (p *Pair) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		p[0], p[1] = int(x), int(x)
	case []any:
		if len(x) != 2 {
			return fmt.Errorf("expected a number or two numbers, got %d numbers", len(x))
		}
		for i, e := range x {
			n, ok := e.(int64)
			if !ok {
				return fmt.Errorf("expected integers, got %v", e)
			}
			p[i] = int(n)
		}
	default:
		return fmt.Errorf("expected a number or an array of two numbers, got %v", v)
	}
	if p[0] < 1 || p[1] < 1 {
		return fmt.Errorf("sizes must be positive, got %v", *p)
	}
	return nil
}

func probability(key string, p float64) error {
	if p < 0 || p > 1 {
		return registry.FieldErrorf(key, "must be a probability in [0, 1], got %g", p)
	}
	return nil
}

func oneOf(key, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return registry.FieldErrorf(key, "must be one of %q, got %q", allowed, v)
}

var interpolations = []string{"nearest", "bilinear", "bicubic", "area", "lanczos"}

// adjustBrightness is Pillow's ImageEnhance.Brightness: a blend with black.
func adjustBrightness(img Image, factor float64) { blend(img.Pix, nil, 0, factor) }

// adjustContrast is Pillow's ImageEnhance.Contrast: a blend with the image's mean gray
// level, rounded.
func adjustContrast(img Image, factor float64) {
	var sum uint64 // exact: at most 255 a pixel
	p := img.Pix
	for len(p) >= 3 {
		sum += uint64(luma(p[0], p[1], p[2]))
		p = p[3:]
	}
	blend(img.Pix, nil, math.Floor(float64(sum)/float64(img.Width*img.Height)+0.5), factor)
}

// adjustSaturation is Pillow's ImageEnhance.Color: a blend with the image's gray version.
func adjustSaturation(img Image, factor float64) {
	a := float32(factor)
	if hasAVX2 {
		// The gray level of each value, so that the kernel reads two arrays alike.
		gray3 := getBuffer(len(img.Pix))
		for i := 0; i+2 < len(gray3); i += 3 {
			g, p := luma(img.Pix[i], img.Pix[i+1], img.Pix[i+2]), gray3[i:i+3:i+3]
			p[0], p[1], p[2] = g, g, g
		}
		n := blendWithAVX2(img.Pix, gray3, a)
		for i := n; i < len(img.Pix); i++ {
			img.Pix[i] = blendValue(float32(gray3[i]), float32(img.Pix[i]), a)
		}
		putBuffer(gray3)
		return
	}
	blend(img.Pix, img.Gray(), 0, factor)
}

// blendValue is one value of Pillow's Image.blend(degenerate, img, factor): computed in
// float32, clipped, truncated.
func blendValue(d, v, a float32) uint8 {
	x := d + float32(a*(v-d)) // rounded before the sum, as C computes it: never fused into an FMA
	switch {
	case x <= 0:
		return 0
	case x >= 255:
		return 255
	}
	return uint8(x)
}

// blend is Pillow's Image.blend(degenerate, img, factor), in place: the degenerate image is
// the gray levels gray (repeated on each channel), or the constant level when gray is nil.
func blend(pix []uint8, gray []uint8, level, factor float64) {
	a := float32(factor)
	if gray == nil {
		// One degenerate level: a table of the 256 results.
		i := 0
		if hasAVX2 {
			i = blendLevelWithAVX2(pix, float32(level), a)
		}
		var lut [256]uint8
		for v := range lut {
			lut[v] = blendValue(float32(level), float32(v), a)
		}
		for ; i < len(pix); i++ {
			pix[i] = lut[pix[i]]
		}
		return
	}
	for j, g := range gray {
		d := float32(g)
		p := pix[3*j : 3*j+3]
		p[0], p[1], p[2] = blendValue(d, float32(p[0]), a), blendValue(d, float32(p[1]), a), blendValue(d, float32(p[2]), a)
	}
}

// adjustHue shifts the hue by factor (in turns), through Pillow's 8-bit HSV, as torchvision's
// adjust_hue: the 8-bit hue plus uint8(factor * 255), wrapping around.
func adjustHue(pix []uint8, factor float64) {
	shift := uint8(int(factor * 255)) // wraps around, as NumPy's uint8 addition does
	i := 0
	if hasAVX2 {
		i = hueWithAVX2(pix, shift)
	}
	t := hsvTables()
	for ; i < len(pix); i += 3 {
		p := pix[i : i+3 : i+3]
		if p[0] == p[1] && p[1] == p[2] {
			continue // gray: no saturation, the hue changes nothing
		}
		h, s, v := t.rgbToHSV(p[0], p[1], p[2])
		p[0], p[1], p[2] = t.hsvToRGB(h+shift, s, v)
	}
}

func clip8(v int) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v)
}

// hsv holds the parts of Pillow's HSV conversions that depend on one byte only, computed
// with the same float and double operations, so that the per-pixel work is a few lookups,
// divisions and multiplications and the results stay Pillow's to the bit. The tables fit
// in the L1 cache.
type hsv struct {
	fs [256]float32 // by saturation: (float)(s / 255.0)
	f  [256]float32 // by hue: the fraction of h * 6 / 255
	i  [256]uint8   // by hue: floor(h * 6 / 255)
}

var hsvTables = sync.OnceValue(func() *hsv {
	t := new(hsv)
	for s := range 256 {
		t.fs[s] = float32(float64(s) / 255)
	}
	for h := range 256 {
		hd := float64(float32(h)) * 6 / 255
		i := math.Floor(hd)
		t.f[h] = float32(hd - i)
		t.i[h] = uint8(int(i) % 6)
	}
	return t
})

// rgbToHSV is Pillow's rgb2hsv, with C's float and double promotions.
func rgbToHSV(r, g, b uint8) (uint8, uint8, uint8) { return hsvTables().rgbToHSV(r, g, b) }

// hsvToRGB is Pillow's hsv2rgb.
func hsvToRGB(h, s, v uint8) (uint8, uint8, uint8) { return hsvTables().hsvToRGB(h, s, v) }

func (t *hsv) rgbToHSV(r, g, b uint8) (uint8, uint8, uint8) {
	maxc := max(r, g, b)
	minc := min(r, g, b)
	if maxc == minc {
		return 0, 0, maxc
	}
	cr := float32(maxc - minc)
	s := cr / float32(maxc)
	var h float32
	switch { // 2.0 and 4.0 are doubles in C: those sums are computed in double
	case r == maxc:
		h = float32(maxc-b)/cr - float32(maxc-g)/cr
	case g == maxc:
		h = float32(2 + float64(float32(maxc-r)/cr) - float64(float32(maxc-b)/cr))
	default:
		h = float32(4 + float64(float32(maxc-g)/cr) - float64(float32(maxc-r)/cr))
	}
	// fmod(h/6 + 1, 1) in double, stored in a float; h/6 + 1 lies in [5/6, 11/6), where
	// subtracting 1 is exact.
	x := float64(h)/6 + 1
	if x >= 1 {
		x--
	}
	return clip8(int(float64(float32(x)) * 255)), clip8(int(float64(s) * 255)), maxc
}

// roundByte is C's round (half away from zero) of x in [0, 255], clipped: floor(x + 0.5),
// less one where the addition itself rounded up to the next integer.
func roundByte(x float64) uint8 {
	n := int(x + 0.5)
	if float64(n)-x > 0.5 {
		n--
	}
	return clip8(n)
}

// hsvToRGB is Pillow's hsv2rgb.
func (t *hsv) hsvToRGB(h8, s8, v8 uint8) (uint8, uint8, uint8) {
	if s8 == 0 {
		return v8, v8, v8
	}
	v := float64(v8)
	fs, f := t.fs[s8], t.f[h8]
	p := roundByte(v * (1 - float64(fs)))
	q := roundByte(v * (1 - float64(fs*f)))
	tt := roundByte(v * (1 - float64(float64(fs)*(1-float64(f))))) // no FMA, as in C
	switch t.i[h8] {
	case 0:
		return v8, tt, p
	case 1:
		return q, v8, p
	case 2:
		return p, v8, tt
	case 3:
		return p, q, v8
	case 4:
		return tt, p, v8
	default:
		return v8, p, q
	}
}

// BuildPipeline builds the transforms of a pipeline. A Normalize may come only after the
// transforms that change pixels, since it is applied to the batch.
func BuildPipeline(env *registry.Env, specs []registry.Spec) ([]Transform, error) {
	out := make([]Transform, 0, len(specs))
	normalized := ""
	for _, s := range specs {
		t, err := registry.Build[Transform](env, s)
		if err != nil {
			return nil, err
		}
		switch t.(type) {
		case *Normalization:
			if normalized != "" {
				return nil, fmt.Errorf("%s: a second Normalize (the first is %s)", s.Path, normalized)
			}
			normalized = s.Path
		case packInputs, *packDetInputs:
		case *pad:
			// mmdet 2.x pads after Normalize, with 0 in normalised units. Pad pads the uint8
			// image and keeps its size before padding (Batch.ImgShapes), which the model's
			// preprocessing sets to 0 after it normalises: the same input.
		default:
			if normalized != "" {
				return nil, fmt.Errorf("%s: %s after Normalize (%s): Normalize runs on the device, on the batch, so it must come after the transforms that change pixels",
					s.Path, s.Type, normalized)
			}
		}
		out = append(out, t)
	}
	return out, nil
}
