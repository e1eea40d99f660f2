// Package models holds the networks and algorithms: NPID and the image classifier used for
// linear evaluation, the ResNet backbones, the necks and the memory bank. Each component
// has one file: its config, the config's Validate and Build, the type it builds and its
// registration.
package models

import (
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Backbone turns a batch of normalised NHWC images into feature maps, one per output index.
type Backbone interface {
	Forward(x *Node, train bool) []*Node
	// OutChannels are the channels of each output.
	OutChannels() []int
}

// Neck maps backbone outputs to one feature vector per image.
type Neck interface {
	Forward(feats []*Node) *Node
}

// ContrastiveHead scores the positive logits [B, 1] against the negative ones [B, K].
type ContrastiveHead interface {
	Loss(ctx *context.Context, pos, neg *Node) *Node
}

// ClsHead is a classification head: one or several classifiers over backbone (or neck)
// outputs, as the linear and multi-head evaluations train them.
type ClsHead interface {
	// Logits returns each classifier's class scores [B, classes] for the outputs.
	Logits(outs []*Node, train bool) []*Node
	// Loss is the training loss of the logits against integer labels [B]: the sum of the
	// classifiers' losses.
	Loss(ctx *context.Context, logits []*Node, labels *Node) *Node
}

// Memory is a memory bank of one feature per training image.
type Memory interface {
	Rows(g *Graph, idx *Node) *Node
	Update(idx, features *Node)
	Size() int
}

// Batch is what a training step sees of a batch.
type Batch struct {
	Images  *Node // uint8 [B, H, W, 3], RGB
	Indices *Node // int32 [B]: each image's index in the dataset
	Labels  *Node // int32 [B]: each image's class, for supervised heads
	// Negatives, when not nil, are the negative indices to use (int32 [B, neg_num], or
	// [neg_num] in the shared mode) instead of drawing them: for tests that compare with a
	// reference implementation.
	Negatives *Node
	// Masks are the per-pixel class labels of segmentation (int32 [B, H, W], 255 = ignore).
	Masks *Node
	// ImgShapes, when not nil, are each image's size before the pipeline's Pad (int32
	// [B, 2]: height, width; mmseg's img_shape): a segmentor zeroes the normalised pixels
	// outside it, as mmseg pads after normalising.
	ImgShapes *Node
	// GTBoxes, GTLabels and GTValid are a detector's ground truth, padded to G boxes per
	// image: float32 [B, G, 4] (x1, y1, x2, y2 in the resized image), int32 [B, G] (the
	// class), bool [B, G] (the slot holds a box).
	GTBoxes, GTLabels, GTValid *Node
	// GTMasks are the GT boxes' instance masks, uint8 [B, G, H, W] (1 inside, on the
	// batch's padded canvas), for detectors with a mask branch; nil otherwise.
	GTMasks *Node
}

// DecodeHead is a segmentation head (mmseg's decode and auxiliary heads).
type DecodeHead interface {
	// Forward returns per-pixel logits [B, h, w, classes] from the backbone's outputs;
	// ctx draws the dropout in training.
	Forward(ctx *context.Context, feats []*Node, train bool) *Node
	// Loss resizes the logits to the size of the labels (int32 [B, H, W]) and scores them.
	Loss(ctx *context.Context, logits, labels *Node) *Node
}
