package models

import "github.com/goselfsup/goselfsup/registry"

// ResNetCIFARConfig is mmcls's ResNet_CIFAR: the ResNet with a 3x3 stride-1 stem and no
// max-pool, for 32x32 images. It takes the keys of ResNet and builds a ResNet.
type ResNetCIFARConfig struct{ ResNetConfig }

func init() {
	registry.Add(registry.Backbones, "ResNet_CIFAR", "ResNet with a 3x3 stride-1 stem and no max-pool, for 32x32 images",
		func() *ResNetCIFARConfig { return &ResNetCIFARConfig{ResNetConfig: *defaultResNet()} })
}

// Build builds the CIFAR ResNet.
func (c *ResNetCIFARConfig) Build(env *registry.Env) (any, error) {
	return newResNet(env, &c.ResNetConfig, true)
}
