package datasets

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/goselfsup/goselfsup/registry"
)

// LoadImageFromFileConfig decodes the image file of a sample. imdecode_backend "cv2",
// "pillow" and "turbojpeg" all mean libjpeg-turbo when the machine has it (their decoders use
// it; the pixels are the same), else Go's decoder; "go" (goselfsup's own) forces Go's.
type LoadImageFromFileConfig struct {
	ToFloat32       bool   `toml:"to_float32" doc:"mmcv's float32 conversion; no effect: images stay uint8 until the device normalises them"`
	ColorType       string `toml:"color_type" doc:"color (three channels, the only one supported), grayscale or unchanged"`
	ImdecodeBackend string `toml:"imdecode_backend" doc:"cv2, pillow or turbojpeg: libjpeg-turbo when the machine has it, else Go's decoder; go: Go's decoder"`
	IgnoreEmpty     bool   `toml:"ignore_empty" doc:"mmcv's tolerance of missing files; no effect: see the dataset's skip_corrupt"`
}

func init() {
	registry.Add(registry.Transforms, "LoadImageFromFile", "decode the sample's image file",
		func() *LoadImageFromFileConfig {
			return &LoadImageFromFileConfig{ColorType: "color", ImdecodeBackend: "cv2"}
		})
}

func (c *LoadImageFromFileConfig) Validate() error {
	return errors.Join(oneOf("color_type", c.ColorType, "color", "grayscale", "unchanged"),
		oneOf("imdecode_backend", c.ImdecodeBackend, "cv2", "pillow", "turbojpeg", "go"))
}

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
	s.OriHeight, s.OriWidth = img.Height, img.Width
	return nil
}

func (c *LoadImageFromFileConfig) Build(*registry.Env) (any, error) {
	if c.ColorType != "color" {
		return nil, fmt.Errorf("color_type %q: only \"color\" (three channels) is supported", c.ColorType)
	}
	return &loadImage{goOnly: c.ImdecodeBackend == "go"}, nil
}
