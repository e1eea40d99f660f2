package datasets

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// PadVal is mmcv's Pad pad_val: one number (the image's) or { img = ..., seg = ...,
// masks = ... } (mmdet 2.x's keys; the instance masks' padding is 0 unless masks sets it).
type PadVal struct {
	Img   int
	Seg   *int
	Masks int
}

// TOMLType says what a PadVal takes, for print_config --describe.
func (PadVal) TOMLType() string { return "int or { img = int, seg = int, masks = int }" }

func (p *PadVal) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		p.Img = int(x)
		return nil
	case map[string]any:
		for k, e := range x {
			n, ok := e.(int64)
			if !ok {
				return fmt.Errorf("pad_val.%s must be an integer, got %v", k, e)
			}
			switch k {
			case "img":
				p.Img = int(n)
			case "seg":
				s := int(n)
				p.Seg = &s
			case "masks":
				p.Masks = int(n)
			default:
				return fmt.Errorf("pad_val has no key %q: it takes img, seg and masks", k)
			}
		}
		return nil
	}
	return fmt.Errorf("pad_val must be a number or { img = ..., seg = ... }, got %v", v)
}

// PadConfig is mmcv's Pad: the image padded at the bottom and right to size ([w, h]) or to a
// multiple of size_divisor, and the segmentation map and the instance masks with it (mmdet
// 2.x pads masks with pad_val's masks, 0 by default). mmseg 1.x pads in its
// SegDataPreProcessor, after normalising, so its padding is 0 after normalisation; a Pad
// transform pads the uint8 image before it, so the sample keeps the size before padding
// (Sample.PadHeight/PadWidth, Batch.ImgShapes) for the model's preprocessing to zero the
// padding after it normalises, which is mmseg's result.
type PadConfig struct {
	Size        *Pair  `toml:"size" doc:"the padded size [w, h]; one number for a square"`
	SizeDivisor int    `toml:"size_divisor" doc:"pad the sides up to a multiple of this instead"`
	PadToSquare bool   `toml:"pad_to_square" doc:"pad to a square of the longer side; not supported"`
	PadVal      PadVal `toml:"pad_val" doc:"the padding of the image, or { img = ..., seg = ... }"`
	SegPadVal   int    `toml:"seg_pad_val" doc:"the padding of the segmentation map (SegDataPreProcessor's name; pad_val.seg overrides it)"`
	PaddingMode string `toml:"padding_mode" doc:"constant, the only one supported"`
}

func init() {
	registry.Add(registry.Transforms, "Pad", "pad at the bottom and right (mmcv), the segmentation map too",
		func() *PadConfig { return &PadConfig{SegPadVal: 255, PaddingMode: "constant"} })
}

func (c *PadConfig) Validate() error {
	var errs []error
	if (c.Size == nil) == (c.SizeDivisor == 0) {
		errs = append(errs, registry.FieldErrorf("size", "or size_divisor is required, and only one of them"))
	}
	if c.SizeDivisor < 0 {
		errs = append(errs, registry.FieldErrorf("size_divisor", "must be positive"))
	}
	if c.PadToSquare {
		errs = append(errs, registry.FieldErrorf("pad_to_square", "is not supported"))
	}
	seg := c.SegPadVal
	if c.PadVal.Seg != nil {
		seg = *c.PadVal.Seg
	}
	if c.PadVal.Img < 0 || c.PadVal.Img > 255 || seg < 0 || seg > 255 || c.PadVal.Masks < 0 || c.PadVal.Masks > 255 {
		errs = append(errs, registry.FieldErrorf("pad_val", "must be in [0, 255]"))
	}
	return errors.Join(append(errs, oneOf("padding_mode", c.PaddingMode, "constant"))...)
}

type pad struct {
	w, h, div            int
	val, segVal, maskVal uint8
}

func (c *PadConfig) Build(*registry.Env) (any, error) {
	t := &pad{div: c.SizeDivisor, val: uint8(c.PadVal.Img), segVal: uint8(c.SegPadVal), maskVal: uint8(c.PadVal.Masks)}
	if c.PadVal.Seg != nil {
		t.segVal = uint8(*c.PadVal.Seg)
	}
	if c.Size != nil {
		t.w, t.h = c.Size[0], c.Size[1]
	}
	return t, nil
}

func (t *pad) Apply(s *Sample, _ *rand.Rand) error {
	iw, ih := s.Image.Width, s.Image.Height
	w, h := t.w, t.h
	if t.div > 0 {
		w, h = (iw+t.div-1)/t.div*t.div, (ih+t.div-1)/t.div*t.div
	}
	if iw > w || ih > h {
		return fmt.Errorf("Pad: the %dx%d image is larger than the padded size %dx%d", iw, ih, w, h)
	}
	if m := s.Mask; m != nil && (m.Width != iw || m.Height != ih) {
		return fmt.Errorf("Pad: the segmentation map is %dx%d but the image is %dx%d", m.Width, m.Height, iw, ih)
	}
	if err := checkMasks(s, "Pad"); err != nil {
		return err
	}
	if s.PadHeight == 0 {
		s.PadHeight, s.PadWidth = ih, iw
	}
	if w == iw && h == ih {
		return nil
	}
	out := newImage(w, h)
	for i := range out.Pix {
		out.Pix[i] = t.val
	}
	for y := 0; y < ih; y++ {
		copy(out.Pix[y*w*3:], s.Image.Pix[y*iw*3:(y+1)*iw*3])
	}
	s.setImage(out)
	if s.Mask != nil {
		s.Mask = s.Mask.Pad(w, h, t.segVal)
	}
	if s.GTMasks != nil {
		s.GTMasks = s.GTMasks.Pad(w, h, t.maskVal)
	}
	return nil
}
