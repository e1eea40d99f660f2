package datasets

import (
	"errors"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Functions, "default_collate", "stack samples into batches (what the loader does)",
		func() *DefaultCollateConfig { return &DefaultCollateConfig{} })
	registry.Add(registry.Functions, "pseudo_collate", "mmengine's list-of-samples batches: not supported, batches are arrays",
		func() *PseudoCollateConfig { return &PseudoCollateConfig{} })
}

// Collate is a component of the "functions" namespace that a dataloader's collate_fn names:
// how samples become a batch. The loader stacks images into one uint8 array, indices and
// labels into vectors (mmengine's default_collate); Collate values describe that choice.
type Collate interface {
	// Stacks reports that the batch's samples are stacked into arrays.
	Stacks() bool
}

// DefaultCollateConfig is mmengine's default_collate.
type DefaultCollateConfig struct{}

type stackCollate struct{}

func (stackCollate) Stacks() bool { return true }

func (*DefaultCollateConfig) Build(*registry.Env) (any, error) { return stackCollate{}, nil }

// PseudoCollateConfig is mmengine's pseudo_collate, which keeps samples as lists for models
// that take images of different sizes; goselfsup's models take stacked arrays.
type PseudoCollateConfig struct{}

func (*PseudoCollateConfig) Validate() error { return errPseudoCollate }

func (*PseudoCollateConfig) Build(*registry.Env) (any, error) { return nil, errPseudoCollate }

var errPseudoCollate = errors.New("pseudo_collate keeps samples as lists, and goselfsup's models take stacked batches: use default_collate")
