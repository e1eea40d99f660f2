package datasets

import (
	"errors"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// ResizeEdgeConfig resizes so that one edge ("short", "long", "width", "height") has
// length scale, keeping the aspect ratio.
type ResizeEdgeConfig struct {
	Scale         int    `toml:"scale" doc:"the length of the edge after resizing" required:"true"`
	Edge          string `toml:"edge" doc:"the edge to resize to scale: short, long, width or height"`
	Backend       string `toml:"backend" doc:"cv2 or pillow; either way the resampling is Pillow's"`
	Interpolation string `toml:"interpolation" doc:"the resampling filter: nearest, bilinear, bicubic, area or lanczos"`
}

func init() {
	registry.Add(registry.Transforms, "ResizeEdge", "resize one edge to scale, keeping the aspect ratio",
		func() *ResizeEdgeConfig {
			return &ResizeEdgeConfig{Edge: "short", Backend: "cv2", Interpolation: "bilinear"}
		})
}

func (c *ResizeEdgeConfig) Validate() error {
	var errs []error
	if c.Scale < 1 {
		errs = append(errs, registry.FieldErrorf("scale", "must be at least 1, got %d", c.Scale))
	}
	return errors.Join(append(errs, oneOf("edge", c.Edge, "short", "long", "width", "height"),
		oneOf("backend", c.Backend, "cv2", "pillow"), oneOf("interpolation", c.Interpolation, interpolations...))...)
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
	if err := noBoxes(s, "ResizeEdge"); err != nil {
		return err
	}
	if s.Mask != nil {
		return errNoMaps("ResizeEdge")
	}
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
