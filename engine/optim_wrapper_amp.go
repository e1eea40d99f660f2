package engine

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.OptimWrappers, "AmpOptimWrapper",
		"OptimWrapper with bfloat16 mixed precision: the train step's convolutions and linear layers in bfloat16, the rest and the weights float32",
		func() *AmpOptimWrapperConfig {
			return &AmpOptimWrapperConfig{OptimWrapperConfig: OptimWrapperConfig{AccumulativeCounts: 1},
				DType: "bfloat16", LossScale: LossScale{Dynamic: true}}
		})
}

// Autocaster is implemented by optim_wrapper configs that train in mixed precision: the
// runner reads the dtype before it builds the model and makes its train step an autocast
// region of it (nn.SetAutocast), as mmengine's AmpOptimWrapper wraps the forward pass in
// torch.autocast (its optim_context).
type Autocaster interface {
	// AutocastDType is the dtype of the convolutions and matrix products of the train
	// step, or dtypes.InvalidDType for none.
	AutocastDType() dtypes.DType
}

// AmpOptimWrapperConfig is mmengine's AmpOptimWrapper in bfloat16: the OptimWrapper (same
// keys) with the train step's Conv2d and Linear layers computed in bfloat16 (torch.autocast).
// The weights, the optimizer's state, batch-norm statistics and the memory bank stay
// float32 (master weights), and so do batch norm, the ReLU, pooling, normalisation, the
// softmax and the loss. Evaluation (feature extraction, kNN) runs in float32, as mmengine's
// val loop does without its fp16 flag.
//
// Differences from mmengine: dtype defaults to bfloat16 (mmengine's None means float16 on
// CUDA) and float16 is refused; loss_scale is accepted and not applied (see LossScale).
type AmpOptimWrapperConfig struct {
	OptimWrapperConfig
	DType     string    `toml:"dtype" doc:"the autocast dtype: bfloat16 (or bf16); float16 is not supported"`
	LossScale LossScale `toml:"loss_scale" doc:"\"dynamic\" or a number: accepted for mmengine's configs, not applied (bfloat16 needs no loss scaling)"`
}

// LossScale is mmengine's loss_scale: "dynamic" or a fixed scale. Loss scaling keeps small
// float16 gradients from underflowing to zero; bfloat16 has float32's exponent range, so the
// gradients that would underflow in bfloat16 underflow in float32 too, and scaling the loss
// by a power of two and the gradients back changes nothing else. goselfsup accepts the key,
// so that mmengine configs port unchanged, and does not apply it: the runner logs a note.
type LossScale struct {
	Dynamic bool
	Scale   float64 // a fixed scale, when not Dynamic
}

func (l *LossScale) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		if x != "dynamic" {
			return fmt.Errorf(`loss_scale must be "dynamic" or a positive number, got %q`, x)
		}
		*l = LossScale{Dynamic: true}
		return nil
	case int64:
		*l = LossScale{Scale: float64(x)}
	case float64:
		*l = LossScale{Scale: x}
	case map[string]any:
		return errors.New(`loss_scale as GradScaler's arguments is not supported: bfloat16 needs no loss scaling; write "dynamic" or remove the key`)
	default:
		return fmt.Errorf(`loss_scale must be "dynamic" or a positive number, got %v`, v)
	}
	if !(l.Scale > 0) || math.IsInf(l.Scale, 0) {
		return fmt.Errorf("loss_scale must be a positive number, got %g", l.Scale)
	}
	return nil
}

// TOMLType is how --describe shows the key.
func (LossScale) TOMLType() string { return `"dynamic" or float` }

// MarshalTOML writes the value as a config sets it, for --describe.
func (l LossScale) MarshalTOML() ([]byte, error) {
	if l.Dynamic {
		return []byte(`"dynamic"`), nil
	}
	return []byte(fmt.Sprint(l.Scale)), nil
}

func (l LossScale) String() string {
	if l.Dynamic {
		return "dynamic"
	}
	return fmt.Sprint(l.Scale)
}

// autocastDTypes are the names dtype takes.
var autocastDTypes = map[string]dtypes.DType{"bfloat16": dtypes.BFloat16, "bf16": dtypes.BFloat16}

func (c *AmpOptimWrapperConfig) Validate() error {
	errs := []error{c.OptimWrapperConfig.Validate()}
	if _, ok := autocastDTypes[c.DType]; !ok {
		switch strings.ToLower(c.DType) {
		case "float16", "fp16", "half", "torch.float16":
			errs = append(errs, registry.FieldErrorf("dtype",
				"%q is not supported, only bfloat16: float16 needs loss scaling to keep small gradients from underflowing, "+
					"which goselfsup does not implement; bfloat16 has float32's range and needs none: write dtype = \"bfloat16\"", c.DType))
		default:
			errs = append(errs, registry.FieldErrorf("dtype", "must be \"bfloat16\" (or \"bf16\"), got %q", c.DType))
		}
	}
	return errors.Join(errs...)
}

// AutocastDType implements Autocaster.
func (c *AmpOptimWrapperConfig) AutocastDType() dtypes.DType { return autocastDTypes[c.DType] }

// LossScaleNote says how loss_scale is handled, for the runner's log.
func (c *AmpOptimWrapperConfig) LossScaleNote() string {
	return fmt.Sprintf("optim_wrapper.loss_scale = %s is not applied: bfloat16 has float32's exponent range and needs no loss scaling", c.LossScale)
}

// Build builds the OptimWrapper; the autocast is the runner's (see Autocaster).
func (c *AmpOptimWrapperConfig) Build(env *registry.Env) (any, error) {
	return c.OptimWrapperConfig.Build(env)
}
