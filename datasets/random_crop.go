package datasets

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// RandomCropConfig crops at a random place, crop_size ([h, w]; one number for a square),
// after optional padding. On a sample with a segmentation map (after LoadAnnotations) it is
// mmseg's RandomCrop instead: no padding, a crop that stops at the image's edges (smaller
// than crop_size on a smaller image), and with cat_max_ratio < 1 up to ten new draws while
// one class covers cat_max_ratio or more of the crop's labelled pixels.
type RandomCropConfig struct {
	CropSize    Pair    `toml:"crop_size" doc:"the crop's size [h, w]; one number for a square" required:"true"`
	Padding     *Pair   `toml:"padding" doc:"the padding of each side [h, w] before cropping; one number for both; none: no padding"`
	PadIfNeeded bool    `toml:"pad_if_needed" doc:"pad images smaller than the crop up to its size"`
	PadVal      int     `toml:"pad_val" doc:"the value of the padding pixels"`
	PaddingMode string  `toml:"padding_mode" doc:"constant (the only one supported), edge, reflect or symmetric"`
	CatMaxRatio float64 `toml:"cat_max_ratio" doc:"mmseg: draw the crop again (up to 10 times) while its most frequent labelled class covers this share of its labelled pixels or more; 1: never"`
	IgnoreIndex int     `toml:"ignore_index" doc:"mmseg: the map value that cat_max_ratio does not count"`
}

func init() {
	registry.Add(registry.Transforms, "RandomCrop", "crop at a random place",
		func() *RandomCropConfig {
			return &RandomCropConfig{PaddingMode: "constant", CatMaxRatio: 1, IgnoreIndex: 255}
		})
}

func (c *RandomCropConfig) Validate() error {
	var errs []error
	if c.CropSize[0] == 0 {
		errs = append(errs, registry.FieldErrorf("crop_size", "is required"))
	}
	if c.CatMaxRatio <= 0 || c.CatMaxRatio > 1 {
		errs = append(errs, registry.FieldErrorf("cat_max_ratio", "must be in (0, 1], got %g", c.CatMaxRatio))
	}
	return errors.Join(append(errs, oneOf("padding_mode", c.PaddingMode, "constant", "edge", "reflect", "symmetric"))...)
}

// randomCrop is mmcls's RandomCrop of crop_size ([h, w]) after constant padding.
type randomCrop struct {
	h, w        int
	pad         [2]int // [h, w] on each side
	padIfNeeded bool
	padVal      uint8
	catMaxRatio float64
	ignore      int
}

func (c *RandomCropConfig) Build(*registry.Env) (any, error) {
	if c.PaddingMode != "constant" {
		return nil, fmt.Errorf("padding_mode %q is not supported: use \"constant\"", c.PaddingMode)
	}
	t := &randomCrop{h: c.CropSize[0], w: c.CropSize[1], padIfNeeded: c.PadIfNeeded, padVal: uint8(c.PadVal),
		catMaxRatio: c.CatMaxRatio, ignore: c.IgnoreIndex}
	if c.Padding != nil {
		t.pad = [2]int{c.Padding[0], c.Padding[1]}
	}
	return t, nil
}

func (t *randomCrop) Apply(s *Sample, rng *rand.Rand) error {
	if err := noBoxes(s, "RandomCrop"); err != nil {
		return err
	}
	if s.Mask != nil {
		return t.applySeg(s, rng)
	}
	if t.catMaxRatio < 1 {
		return errors.New("RandomCrop: cat_max_ratio needs the sample's segmentation map: put LoadAnnotations before it")
	}
	img := s.Image
	ph, pw := t.pad[0], t.pad[1]
	if t.padIfNeeded {
		ph = max(ph, (t.h-img.Height+1)/2)
		pw = max(pw, (t.w-img.Width+1)/2)
	}
	if ph > 0 || pw > 0 {
		img = img.pad(pw, ph, t.padVal)
	}
	if img.Height < t.h || img.Width < t.w {
		return fmt.Errorf("RandomCrop: a %dx%d image is smaller than the %dx%d crop", img.Width, img.Height, t.w, t.h)
	}
	y := rng.IntN(img.Height - t.h + 1)
	x := rng.IntN(img.Width - t.w + 1)
	s.setImage(img.Crop(x, y, t.w, t.h))
	return nil
}

func (m Image) pad(px, py int, v uint8) Image {
	out := NewImage(m.Width+2*px, m.Height+2*py)
	for i := range out.Pix {
		out.Pix[i] = v
	}
	for y := 0; y < m.Height; y++ {
		copy(out.Pix[((y+py)*out.Width+px)*3:], m.Pix[y*m.Width*3:(y+1)*m.Width*3])
	}
	return out
}

// applySeg is mmseg's RandomCrop.
func (t *randomCrop) applySeg(s *Sample, rng *rand.Rand) error {
	if t.pad != [2]int{} || t.padIfNeeded {
		return errors.New("RandomCrop: padding is not supported with segmentation maps (mmseg's RandomCrop has none; pad with Pad)")
	}
	m := s.Mask
	if m.Width != s.Image.Width || m.Height != s.Image.Height {
		return fmt.Errorf("RandomCrop: the segmentation map is %dx%d but the image is %dx%d", m.Width, m.Height, s.Image.Width, s.Image.Height)
	}
	y0, y1, x0, x1 := t.segBox(m, rng)
	s.setImage(s.Image.Crop(x0, y0, x1-x0, y1-y0))
	s.Mask = m.Crop(x0, y0, x1-x0, y1-y0)
	return nil
}

// segBox is mmseg's RandomCrop.crop_bbox: offsets drawn as np.random.randint(0, margin + 1),
// first y then x, the box clipped to the map as NumPy's slices clip; with cat_max_ratio < 1,
// while the box's labelled pixels have fewer than two classes or one class covers
// cat_max_ratio or more of them, a new box, at most ten times (the tenth new box is kept
// unchecked).
func (t *randomCrop) segBox(m *Mask, rng *rand.Rand) (y0, y1, x0, x1 int) {
	draw := func() (int, int, int, int) {
		oy := rng.IntN(max(m.Height-t.h, 0) + 1)
		ox := rng.IntN(max(m.Width-t.w, 0) + 1)
		return oy, min(oy+t.h, m.Height), ox, min(ox+t.w, m.Width)
	}
	y0, y1, x0, x1 = draw()
	if t.catMaxRatio >= 1 {
		return
	}
	for range 10 {
		var cnt [256]int
		for y := y0; y < y1; y++ {
			for _, v := range m.Pix[y*m.Width+x0 : y*m.Width+x1] {
				cnt[v]++
			}
		}
		if t.ignore >= 0 && t.ignore < 256 {
			cnt[t.ignore] = 0
		}
		classes, most, total := 0, 0, 0
		for _, c := range cnt {
			if c > 0 {
				classes++
				most = max(most, c)
				total += c
			}
		}
		if classes > 1 && float64(most)/float64(total) < t.catMaxRatio {
			break
		}
		y0, y1, x0, x1 = draw()
	}
	return
}
