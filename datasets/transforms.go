package datasets

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
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
}

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

// loadImage is LoadImageFromFile: it decodes the sample's file when the dataset did not load
// the image. JPEG goes to libjpeg-turbo when the machine has it (as Pillow's and OpenCV's
// decoders, which use it too) unless imdecode_backend is "go".
type loadImage struct{ goOnly bool }

func (l *loadImage) Apply(s *Sample, _ *rand.Rand) error {
	if s.Image.Pix != nil {
		return nil
	}
	if s.Path == "" {
		return errors.New("LoadImageFromFile: the sample has neither an image nor a path")
	}
	data, err := os.ReadFile(s.Path)
	if err != nil {
		return &LoadError{Path: s.Path, Err: err}
	}
	img, err := decodeInto(getBuffer, data, l.goOnly)
	if err != nil {
		return &LoadError{Path: s.Path, Err: fmt.Errorf("decoding: %w", err)}
	}
	s.Image = img
	return nil
}

func (c *LoadImageFromFileConfig) Build(*registry.Env) (any, error) {
	if c.ColorType != "color" {
		return nil, fmt.Errorf("color_type %q: only \"color\" (three channels) is supported", c.ColorType)
	}
	return &loadImage{goOnly: c.ImdecodeBackend == "go"}, nil
}

// randomResizedCrop is mmselfsup's RandomResizedCrop (torchvision's get_params).
type randomResizedCrop struct {
	h, w         int
	scale, ratio [2]float64
	attempts     int
	interp       Interpolation
}

func (c *RandomResizedCropConfig) Build(*registry.Env) (any, error) {
	return &randomResizedCrop{h: c.Size[0], w: c.Size[1], scale: c.Scale, ratio: c.Ratio,
		attempts: c.MaxAttempts, interp: Interpolation(c.Interpolation)}, nil
}

// cropParams returns the crop (y, x, h, w) for an image of the given size.
func (t *randomResizedCrop) cropParams(height, width int, rng *rand.Rand) (int, int, int, int) {
	area := float64(height * width)
	logLo, logHi := math.Log(t.ratio[0]), math.Log(t.ratio[1])
	for range t.attempts {
		target := uniform(rng, t.scale[0], t.scale[1]) * area
		aspect := math.Exp(uniform(rng, logLo, logHi))
		w := pyRound(math.Sqrt(target * aspect))
		h := pyRound(math.Sqrt(target / aspect))
		if w > 0 && w <= width && h > 0 && h <= height {
			return rng.IntN(height - h + 1), rng.IntN(width - w + 1), h, w
		}
	}
	// Fall back to a central crop with the nearest allowed aspect ratio.
	inRatio := float64(width) / float64(height)
	w, h := width, height
	switch {
	case inRatio < t.ratio[0]:
		h = pyRound(float64(w) / t.ratio[0])
	case inRatio > t.ratio[1]:
		w = pyRound(float64(h) * t.ratio[1])
	}
	return (height - h) / 2, (width - w) / 2, h, w
}

func (t *randomResizedCrop) Apply(s *Sample, rng *rand.Rand) error {
	y, x, h, w := t.cropParams(s.Image.Height, s.Image.Width, rng)
	img, err := s.Image.ResizeRegion(x, y, w, h, t.w, t.h, t.interp)
	s.setImage(img)
	return err
}

// randomGrayscale is mmcv's RandomGrayscale, as mmselfsup uses it: with probability prob,
// the sum of the channels weighted by channel_weights / sum(channel_weights) (given in the
// config's colour order, BGR by default), on every channel. mmcv keeps that sum as floats;
// here it is truncated to 8 bits, as the next step of a Pillow pipeline truncates it.
type randomGrayscale struct {
	prob    float64
	weights [3]float64 // normalised, in the order of the config's channels
	order   [3]int     // where each of those channels is in an RGB pixel
	keep    bool
}

func (c *RandomGrayscaleConfig) Build(*registry.Env) (any, error) {
	if !c.KeepChannels {
		return nil, errors.New("keep_channels = false (one-channel output) is not supported: models take three channels")
	}
	sum := c.ChannelWeights[0] + c.ChannelWeights[1] + c.ChannelWeights[2]
	if sum <= 0 {
		return nil, errors.New("channel_weights must have a positive sum")
	}
	t := &randomGrayscale{prob: c.Prob, keep: c.KeepChannels, order: [3]int{0, 1, 2}}
	if c.ColorFormat == "bgr" {
		t.order = [3]int{2, 1, 0}
	}
	for i, w := range c.ChannelWeights {
		t.weights[i] = w / sum
	}
	return t, nil
}

func (t *randomGrayscale) Apply(s *Sample, rng *rand.Rand) error {
	if rng.Float64() >= t.prob {
		return nil
	}
	p := s.Image.Pix
	w, o := t.weights, t.order
	for i := 0; i < len(p); i += 3 {
		// Summed in the config's channel order, as NumPy sums them.
		// Each product rounded, as NumPy computes them, never fused into an FMA.
		v := float64(w[0]*float64(p[i+o[0]])) + float64(w[1]*float64(p[i+o[1]])) + float64(w[2]*float64(p[i+o[2]]))
		g := uint8(math.Min(math.Max(v, 0), 255))
		p[i], p[i+1], p[i+2] = g, g, g
	}
	return nil
}

// colorJitter is torchvision's ColorJitter on Pillow, as mmselfsup's: the four adjustments
// in a random order, each with a factor drawn from its range.
type colorJitter struct {
	brightness, contrast, saturation, hue [2]float64
	use                                   [4]bool
}

func (c *ColorJitterConfig) Build(*registry.Env) (any, error) {
	t := &colorJitter{}
	set := func(j Jitter, center float64, i int, dst *[2]float64) {
		lo, hi := j.Range(center)
		if j.Bounds == nil {
			lo = math.Max(lo, 0)
			if center == 0 {
				lo = -hi
			}
		}
		*dst = [2]float64{lo, hi}
		t.use[i] = j.Bounds != nil || j.Strength != 0
	}
	set(c.Brightness, 1, 0, &t.brightness)
	set(c.Contrast, 1, 1, &t.contrast)
	set(c.Saturation, 1, 2, &t.saturation)
	set(c.Hue, 0, 3, &t.hue)
	return t, nil
}

func (t *colorJitter) Apply(s *Sample, rng *rand.Rand) error {
	order := rng.Perm(4)
	// torchvision draws every factor before applying them, in the fixed order b, c, s, h.
	var f [4]float64
	for i, r := range [][2]float64{t.brightness, t.contrast, t.saturation, t.hue} {
		if t.use[i] {
			f[i] = uniform(rng, r[0], r[1])
		}
	}
	for _, op := range order {
		if !t.use[op] {
			continue
		}
		switch op {
		case 0:
			adjustBrightness(s.Image, f[0])
		case 1:
			adjustContrast(s.Image, f[1])
		case 2:
			adjustSaturation(s.Image, f[2])
		case 3:
			adjustHue(s.Image.Pix, f[3])
		}
	}
	return nil
}

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

// randomFlip flips with probability prob.
type randomFlip struct {
	prob      float64
	direction string
}

func (c *RandomFlipConfig) Build(*registry.Env) (any, error) {
	return &randomFlip{prob: c.Prob, direction: c.Direction}, nil
}

func (t *randomFlip) Apply(s *Sample, rng *rand.Rand) error {
	if rng.Float64() >= t.prob {
		return nil
	}
	switch t.direction {
	case "horizontal":
		s.Image.flipHInPlace()
	case "vertical":
		s.Image.flipVInPlace()
	default:
		s.Image.flipHInPlace()
		s.Image.flipVInPlace()
	}
	return nil
}

// resizeEdge is mmcls's ResizeEdge: one edge to scale, the other in proportion (truncated).
type resizeEdge struct {
	scale  int
	edge   string
	interp Interpolation
}

func (c *ResizeEdgeConfig) Build(*registry.Env) (any, error) {
	return &resizeEdge{scale: c.Scale, edge: c.Edge, interp: Interpolation(c.Interpolation)}, nil
}

func (t *resizeEdge) Apply(s *Sample, _ *rand.Rand) error {
	w, h := s.Image.Width, s.Image.Height
	short := t.edge == "short" && w < h || t.edge == "long" && w > h || t.edge == "width"
	var nw, nh int
	if short {
		nw, nh = t.scale, int(float64(t.scale)*float64(h)/float64(w))
	} else {
		nw, nh = int(float64(t.scale)*float64(w)/float64(h)), t.scale
	}
	img, err := s.Image.Resize(nw, nh, t.interp)
	s.setImage(img)
	return err
}

// resize is mmcv's Resize to scale ([w, h]); with keep_ratio, as large as fits.
type resize struct {
	w, h      int
	keepRatio bool
	interp    Interpolation
}

func (c *ResizeConfig) Build(*registry.Env) (any, error) {
	return &resize{w: c.Scale[0], h: c.Scale[1], keepRatio: c.KeepRatio, interp: Interpolation(c.Interpolation)}, nil
}

func (t *resize) Apply(s *Sample, _ *rand.Rand) error {
	w, h := t.w, t.h
	if t.keepRatio {
		long, short := float64(max(t.w, t.h)), float64(min(t.w, t.h))
		iw, ih := float64(s.Image.Width), float64(s.Image.Height)
		f := math.Min(long/math.Max(iw, ih), short/math.Min(iw, ih))
		w, h = int(iw*f+0.5), int(ih*f+0.5)
	}
	img, err := s.Image.Resize(w, h, t.interp)
	s.setImage(img)
	return err
}

// centerCrop is mmcv's CenterCrop of crop_size ([w, h]); an image smaller than the crop is
// kept whole along that axis.
type centerCrop struct{ w, h int }

func (c *CenterCropConfig) Build(*registry.Env) (any, error) {
	return &centerCrop{w: c.CropSize[0], h: c.CropSize[1]}, nil
}

func (t *centerCrop) Apply(s *Sample, _ *rand.Rand) error {
	w, h := min(t.w, s.Image.Width), min(t.h, s.Image.Height)
	y := max(0, pyRound(float64(s.Image.Height-t.h)/2))
	x := max(0, pyRound(float64(s.Image.Width-t.w)/2))
	s.setImage(s.Image.Crop(x, y, w, h))
	return nil
}

// randomCrop is mmcls's RandomCrop of crop_size ([h, w]) after constant padding.
type randomCrop struct {
	h, w        int
	pad         [2]int // [h, w] on each side
	padIfNeeded bool
	padVal      uint8
}

func (c *RandomCropConfig) Build(*registry.Env) (any, error) {
	if c.PaddingMode != "constant" {
		return nil, fmt.Errorf("padding_mode %q is not supported: use \"constant\"", c.PaddingMode)
	}
	t := &randomCrop{h: c.CropSize[0], w: c.CropSize[1], padIfNeeded: c.PadIfNeeded, padVal: uint8(c.PadVal)}
	if c.Padding != nil {
		t.pad = [2]int{c.Padding[0], c.Padding[1]}
	}
	return t, nil
}

func (t *randomCrop) Apply(s *Sample, rng *rand.Rand) error {
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

// lighting is AlexNet's PCA lighting noise (mmcls's Lighting), rounded back to 8 bits.
type lighting struct {
	shift func(rng *rand.Rand) [3]float64 // per R, G, B
}

func (c *LightingConfig) Build(*registry.Env) (any, error) {
	eigval, eigvec, std := c.Eigval, c.Eigvec, c.Alphastd
	bgr := !c.ToRGB // the eigenvectors are in the order of mmcv's BGR images
	return &lighting{shift: func(rng *rand.Rand) [3]float64 {
		var alpha [3]float64
		for i := range alpha {
			alpha[i] = rng.NormFloat64() * std
		}
		var alter [3]float64
		for ch := range 3 {
			for j := range 3 {
				alter[ch] += eigvec[ch][j] * alpha[j] * eigval[j]
			}
		}
		if bgr {
			alter[0], alter[2] = alter[2], alter[0]
		}
		return alter
	}}, nil
}

func (t *lighting) Apply(s *Sample, rng *rand.Rand) error {
	d := t.shift(rng)
	p := s.Image.Pix
	for i := range p {
		p[i] = clampByte(float64(p[i]) + d[i%3])
	}
	return nil
}

// packInputs marks the end of a pipeline; the loader packs samples into batches.
type packInputs struct{}

func (packInputs) Apply(*Sample, *rand.Rand) error { return nil }

func (c *PackSelfSupInputsConfig) Build(*registry.Env) (any, error) { return packInputs{}, nil }
func (c *PackClsInputsConfig) Build(*registry.Env) (any, error)     { return packInputs{}, nil }

// Normalization is a pipeline's Normalize: the mean and standard deviation per channel (in
// 0-255 units, in the network's channel order) and whether the network sees RGB. The
// pixels stay uint8; the model normalises the batch on the device.
type Normalization struct {
	Mean, Std [3]float64
	ToRGB     bool
}

// Apply leaves the sample as it is: the normalisation happens on the device.
func (*Normalization) Apply(*Sample, *rand.Rand) error { return nil }

func (c *NormalizeConfig) Build(*registry.Env) (any, error) {
	return &Normalization{Mean: c.Mean, Std: c.Std, ToRGB: c.ToRGB}, nil
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
		case packInputs:
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
