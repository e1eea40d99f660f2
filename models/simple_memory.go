package models

import (
	"errors"
	"math"
	"math/rand/v2"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// SimpleMemoryConfig is mmselfsup's SimpleMemory: one L2-normalised feature per training
// image, updated as normalise((1 - momentum) * old + momentum * feature).
type SimpleMemoryConfig struct {
	Length   int     `toml:"length" doc:"the number of rows: the number of training images" required:"true"`
	FeatDim  int     `toml:"feat_dim" doc:"the dimension of each feature (the neck's out_channels)" required:"true"`
	Momentum float64 `toml:"momentum" doc:"the weight of the new feature in each update: normalise((1 - momentum) * old + momentum * new)"`
}

func init() {
	registry.Add(registry.Memories, "SimpleMemory", "one L2-normalised feature per training image, momentum-updated",
		func() *SimpleMemoryConfig { return &SimpleMemoryConfig{Momentum: 0.5} })
}

func (c *SimpleMemoryConfig) Validate() error {
	var errs []error
	if c.Length < 1 {
		errs = append(errs, registry.FieldErrorf("length", "must be at least 1 (the number of training images), got %d", c.Length))
	}
	if c.FeatDim < 1 {
		errs = append(errs, registry.FieldErrorf("feat_dim", "must be at least 1, got %d", c.FeatDim))
	}
	if c.Momentum < 0 || c.Momentum > 1 {
		errs = append(errs, registry.FieldErrorf("momentum", "must be in [0, 1], got %g", c.Momentum))
	}
	return errors.Join(errs...)
}

// SimpleMemory is mmselfsup's SimpleMemory: one L2-normalised feature per training image,
// resident on the device as a non-trainable variable ("memory_bank.feature_bank"), and
// updated inside the training step as
//
//	bank[i] = normalise((1 - momentum) * bank[i] + momentum * normalise(feature))
type SimpleMemory struct {
	Bank     *context.Variable
	Length   int
	FeatDim  int
	Momentum float64
}

// Build starts the bank as mmselfsup does: rows drawn from a standard normal, normalised,
// so uniform on the unit sphere.
func (c *SimpleMemoryConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(s.Seed(), 0x6d656d6f7279))
	var bank *tensors.Tensor
	if s.DType() == dtypes.Float64 {
		bank = tensors.FromFlatDataAndDimensions(randomRows[float64](rng, c.Length, c.FeatDim), c.Length, c.FeatDim)
	} else {
		bank = tensors.FromFlatDataAndDimensions(randomRows[float32](rng, c.Length, c.FeatDim), c.Length, c.FeatDim)
	}
	v := s.Context().Checked(false).VariableWithValue("feature_bank", bank)
	v.SetTrainable(false)
	return &SimpleMemory{Bank: v, Length: c.Length, FeatDim: c.FeatDim, Momentum: c.Momentum}, nil
}

// randomRows draws n rows of dim standard normal values and normalises each; it fills the
// target type directly, since ImageNet's bank is 164 million values.
func randomRows[T float32 | float64](rng *rand.Rand, n, dim int) []T {
	data := make([]T, n*dim)
	row := make([]float64, dim)
	for i := 0; i < n; i++ {
		var norm float64
		for j := range row {
			row[j] = rng.NormFloat64()
			norm += row[j] * row[j]
		}
		norm = math.Max(math.Sqrt(norm), 1e-12)
		for j, v := range row {
			data[i*dim+j] = T(v / norm)
		}
	}
	return data
}

// Size is the number of rows.
func (m *SimpleMemory) Size() int { return m.Length }

// Rows gathers the bank rows of idx ([n] integers) -> [n, feat_dim].
func (m *SimpleMemory) Rows(g *Graph, idx *Node) *Node {
	return Gather(m.Bank.ValueGraph(g), ExpandAxes(idx, -1))
}

// Update writes the momentum update of the rows idx with the features ([B, feat_dim]).
// When an index appears several times in a batch (as a distributed sampler's padding can
// make it), its last occurrence wins, whatever order the device applies the writes in.
func (m *SimpleMemory) Update(idx, features *Node) {
	g := idx.Graph()
	bank := m.Bank.ValueGraph(g)
	features = StopGradient(nn.Normalize(features))
	old := m.Rows(g, idx)
	mixed := nn.Normalize(Add(MulScalar(old, 1-m.Momentum), MulScalar(features, m.Momentum)))

	// last[j] is 1 unless a later row of the batch has the same index.
	same := Equal(ExpandAxes(idx, 1), ExpandAxes(idx, 0)) // [B, B]
	pairs := shapes.Make(dtypes.Int32, same.Shape().Dimensions...)
	later := GreaterThan(Iota(g, pairs, 1), Iota(g, pairs, 0))
	superseded := ReduceLogicalOr(LogicalAnd(same, later), 1)
	last := ExpandAxes(ConvertDType(LogicalNot(superseded), bank.DType()), -1)

	// Subtracting a row from itself gives exactly zero, so adding the new row afterwards
	// writes it exactly; the rows that are not last add zeros.
	where := ExpandAxes(idx, -1)
	cleared := ScatterSum(bank, where, Mul(Neg(old), last), false, false)
	m.Bank.SetValueGraph(ScatterSum(cleared, where, Mul(mixed, last), false, false))
}
