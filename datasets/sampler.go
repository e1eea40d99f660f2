package datasets

import (
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Samplers, "DefaultSampler", "each sample once per epoch, shuffled with a seed per epoch, split among devices",
		func() *DefaultSamplerConfig { return &DefaultSamplerConfig{Shuffle: true, RoundUp: true} })
	registry.Add(registry.Samplers, "InfiniteSampler", "mmengine's sampler for iteration-based loops: the DefaultSampler's order, epoch after epoch",
		func() *DefaultSamplerConfig { return &DefaultSamplerConfig{Shuffle: true, RoundUp: true} })
}

// Sampler is a component of the "samplers" namespace: it orders a dataset's samples for
// each epoch.
type Sampler interface {
	// Len is the number of samples an epoch yields, for a dataset of n.
	Len(n int) int
	// Order is the sample order of epoch for a dataset of n samples.
	Order(n, epoch int) []int
}

// SamplerSeed is the run's seed, which a sampler without its own uses; the runner adds it to
// the Env that builds samplers.
type SamplerSeed uint64

// Shard is this device's part of a run on several: the Env that builds samplers holds one.
type Shard struct{ Rank, WorldSize int }

// DefaultSamplerConfig is mmengine's DefaultSampler.
type DefaultSamplerConfig struct {
	Shuffle bool   `toml:"shuffle" doc:"a new permutation every epoch (else the dataset order)"`
	Seed    *int64 `toml:"seed" doc:"the seed of the permutations (default: the run's)"`
	RoundUp bool   `toml:"round_up" doc:"on several devices, repeat samples so that each gets as many"`
}

func (c *DefaultSamplerConfig) Build(env *registry.Env) (any, error) {
	s := &DefaultSampler{Shuffle: c.Shuffle, RoundUp: c.RoundUp, WorldSize: 1}
	if seed, err := registry.Need[SamplerSeed](env); err == nil {
		s.Seed = uint64(seed)
	}
	if c.Seed != nil {
		s.Seed = uint64(*c.Seed)
	}
	if sh, err := registry.Need[Shard](env); err == nil {
		s.Rank, s.WorldSize = sh.Rank, sh.WorldSize
	}
	return s, nil
}

// DefaultSampler visits every sample once per epoch: a permutation seeded by (Seed, epoch)
// when shuffling, else the dataset order. On WorldSize > 1 devices, as PyTorch's
// DistributedSampler, rank r takes every WorldSize-th sample from r of the same order; with
// RoundUp the order is first padded by repeating its start to a multiple of WorldSize.
type DefaultSampler struct {
	Shuffle         bool
	Seed            uint64
	Rank, WorldSize int
	RoundUp         bool
}

func (s *DefaultSampler) Len(n int) int {
	w := max(s.WorldSize, 1)
	if s.RoundUp {
		return (n + w - 1) / w
	}
	return (n - s.Rank + w - 1) / w
}

func (s *DefaultSampler) Order(n, epoch int) []int {
	var order []int
	if s.Shuffle {
		order = rand.New(rand.NewPCG(s.Seed^0x73616d706c6572, uint64(epoch))).Perm(n)
	} else {
		order = make([]int, n)
		for i := range order {
			order[i] = i
		}
	}
	w := max(s.WorldSize, 1)
	if w == 1 {
		return order
	}
	total := n
	if s.RoundUp {
		total = s.Len(n) * w
	}
	for i := 0; len(order) < total; i++ {
		order = append(order, order[i%n])
	}
	mine := make([]int, 0, s.Len(n))
	for i := s.Rank; i < total; i += w {
		mine = append(mine, order[i])
	}
	return mine
}
