package datasets

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// DemoShapesConfig configures generated images of shapes: each class is a shape (disc,
// square, triangle, plus, ring, cross, horizontal bar, vertical bar, frame, diamond), drawn
// in a near-white colour at a random position and size on a dark random background with
// noise. What separates the classes is the outline, which survives cropping, flipping and
// colour jitter; the colour does not help. Made in the program from the seed: no files.
type DemoShapesConfig struct {
	NumSamples int             `toml:"num_samples" doc:"the number of images"`
	NumClasses int             `toml:"num_classes" doc:"the number of shapes, 2 to 10; image i has class i mod num_classes"`
	Size       int             `toml:"size" doc:"the side of the square images, in pixels"`
	Seed       uint64          `toml:"seed" doc:"the seed the images are drawn from; each image has its own stream"`
	Pipeline   []registry.Spec `toml:"pipeline" registry:"transforms" doc:"the transforms that make each sample a model input, in order"`
}

func init() {
	registry.Add(registry.Datasets, "DemoShapes", "generated shapes, one class per shape, made from a seed (the demo's data)",
		func() *DemoShapesConfig { return &DemoShapesConfig{NumSamples: 1000, NumClasses: 10, Size: 16} })
}

// DemoClasses are the shapes, in label order.
var DemoClasses = []string{"disc", "square", "triangle", "plus", "ring", "cross", "hbar", "vbar", "frame", "diamond"}

func (c *DemoShapesConfig) Validate() error {
	var errs []error
	if c.NumSamples < 1 {
		errs = append(errs, registry.FieldErrorf("num_samples", "must be at least 1, got %d", c.NumSamples))
	}
	if c.NumClasses < 2 || c.NumClasses > len(DemoClasses) {
		errs = append(errs, registry.FieldErrorf("num_classes", "must be 2 to %d, got %d", len(DemoClasses), c.NumClasses))
	}
	if c.Size < 8 {
		errs = append(errs, registry.FieldErrorf("size", "must be at least 8, got %d", c.Size))
	}
	return errors.Join(errs...)
}

func (c *DemoShapesConfig) Build(env *registry.Env) (any, error) {
	pipeline, err := BuildPipeline(env, c.Pipeline)
	if err != nil {
		return nil, err
	}
	return &Dataset{Source: &demoShapes{n: c.NumSamples, classes: c.NumClasses, size: c.Size, seed: c.Seed}, Pipeline: pipeline}, nil
}

type demoShapes struct {
	n, classes, size int
	seed             uint64
}

func (d *demoShapes) Len() int          { return d.n }
func (d *demoShapes) Classes() []string { return DemoClasses[:d.classes] }

// Sample draws image i from its own random stream, so any image can be made alone.
func (d *demoShapes) Sample(i int) (Sample, error) {
	if i < 0 || i >= d.n {
		return Sample{}, fmt.Errorf("sample %d out of range [0, %d)", i, d.n)
	}
	rng := rand.New(rand.NewPCG(d.seed, uint64(i)))
	label := i % d.classes
	return Sample{Image: drawShape(label, d.size, rng), Label: label, Index: i}, nil
}

func drawShape(class, size int, rng *rand.Rand) Image {
	s := float64(size)
	r := uniform(rng, 0.25, 0.42) * s
	cx := uniform(rng, r*0.8, s-r*0.8)
	cy := uniform(rng, r*0.8, s-r*0.8)
	var bg, fg [3]float64
	for ch := range 3 {
		bg[ch] = uniform(rng, 0, 0.3)
		fg[ch] = math.Min(math.Max([]float64{0.9, 0.85, 0.8}[ch]+rng.NormFloat64()*0.05, 0), 1)
	}
	img := NewImage(size, size)
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			dx := (float64(x) + 0.5 - cx) / r
			dy := (float64(y) + 0.5 - cy) / r
			c := bg
			if inShape(class, dx, dy) {
				c = fg
			}
			p := (y*size + x) * 3
			for ch := range 3 {
				img.Pix[p+ch] = clampByte(255 * (c[ch] + rng.NormFloat64()*0.05))
			}
		}
	}
	return img
}

// inShape reports whether the point (dx, dy), in units of the shape's radius from its
// centre, lies in the shape of class.
func inShape(class int, dx, dy float64) bool {
	ax, ay := math.Abs(dx), math.Abs(dy)
	inBox := ax <= 1 && ay <= 1
	r2 := dx*dx + dy*dy
	switch class {
	case 0:
		return r2 <= 1
	case 1:
		return ax <= 0.8 && ay <= 0.8
	case 2:
		return dy <= 0.8 && dy >= -0.9+2*ax
	case 3:
		return (ax <= 0.25 || ay <= 0.25) && inBox
	case 4:
		return r2 <= 1 && r2 >= 0.4
	case 5:
		return (math.Abs(dx-dy) <= 0.35 || math.Abs(dx+dy) <= 0.35) && inBox
	case 6:
		return ay <= 0.3 && ax <= 1
	case 7:
		return ax <= 0.3 && ay <= 1
	case 8:
		return inBox && !(ax <= 0.55 && ay <= 0.55)
	default:
		return ax+ay <= 1
	}
}
