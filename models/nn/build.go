package nn

// Facts that a model gives the components it builds through their registry.Env, so that a
// head or a loss needs no import of the model's package to receive them.

// DataSize is the number of training images, which the NCE loss needs for its noise
// distribution. NPID provides it to the head it builds.
type DataSize int

// BackboneChannels are the channels of the backbone outputs that a head receives; the
// ImageClassifier provides them to the head it builds.
type BackboneChannels []int
