package datasets

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"sync"
)

// Batch is samples packed for a model: images as one uint8 array.
type Batch struct {
	Images        []uint8 // [N, Height, Width, 3], RGB
	Height, Width int
	Indices       []int32 // each sample's index in the dataset
	Labels        []int32 // -1 for unlabelled samples
	// Targets are the samples' per-class labels, [N, classes], for multi-label datasets.
	Targets []int8

	// Segmentation batches (samples of BaseSegDataset, PascalVOCDataset) have the rest.
	//
	// Masks are the samples' segmentation maps, [N, MaskHeight, MaskWidth], class indices
	// with 255 (the dataset's ignore_index) unlabelled, when the pipeline loaded them
	// (LoadAnnotations). They have the images' size in training; in mmseg's test pipeline
	// (LoadAnnotations after Resize) they keep the original size, OriShapes.
	Masks                 []uint8
	MaskHeight, MaskWidth int
	// OriShapes are the samples' sizes as decoded, [N, 2] (height, width): mmseg's
	// ori_shape, the size the logits are resized back to for evaluation.
	OriShapes []int32
	// ImgShapes are the samples' sizes before Pad, [N, 2] (height, width): mmseg's
	// img_shape, the part of each image that is not padding. mmseg pads after normalising,
	// with 0; a model that normalises on the device sets the rest to 0 to match.
	ImgShapes []int32

	// Det is the detection part of batches of detection samples (VOCDataset), which also
	// have OriShapes and ImgShapes; nil otherwise. Their images may differ in size (mmdet's
	// keep-ratio Resize): the batch pads them at the bottom and right to the largest, as
	// mmcv's collate does, and ImgShapes give the part of each that is the image.
	Det *DetBatch
}

// Len is the number of samples.
func (b *Batch) Len() int { return len(b.Indices) }

// Loader reads a dataset in batches, its samples transformed by Workers goroutines while
// the consumer works on earlier batches (at most Prefetch batches ahead).
//
// Each sample's randomness comes from (Seed, epoch, index) alone, so an epoch's batches do
// not depend on the number of workers, and a resumed run sees the same data.
type Loader struct {
	Dataset   *Dataset
	BatchSize int
	Workers   int
	DropLast  bool
	Seed      uint64
	Prefetch  int
	// Sampler orders each epoch's samples. Without one, the Loader samples as a
	// DefaultSampler of Shuffle, Seed, Rank and WorldSize.
	Sampler Sampler
	// Shuffle, Rank and WorldSize configure the Loader's own DefaultSampler when Sampler is
	// nil: a permutation per epoch, split among WorldSize devices as PyTorch's
	// DistributedSampler.
	Shuffle         bool
	Rank, WorldSize int
	// OnSkip, if set, hears of every unreadable image that SkipCorrupt replaced. It is called
	// from the worker goroutines.
	OnSkip func(path string, err error)
}

func (l *Loader) sampler() Sampler {
	if l.Sampler != nil {
		return l.Sampler
	}
	return &DefaultSampler{Shuffle: l.Shuffle, Seed: l.Seed, Rank: l.Rank, WorldSize: l.WorldSize, RoundUp: true}
}

// Len is the number of batches in an epoch.
func (l *Loader) Len() int {
	n := l.sampler().Len(l.Dataset.Len())
	if l.DropLast {
		return n / l.BatchSize
	}
	return (n + l.BatchSize - 1) / l.BatchSize
}

// Order returns the sample order of an epoch.
func (l *Loader) Order(epoch int) []int { return l.sampler().Order(l.Dataset.Len(), epoch) }

// SampleRNG returns the random source of sample index in epoch.
func SampleRNG(seed uint64, epoch, index int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(epoch)<<40^uint64(index)))
}

type result struct {
	batch Batch
	err   error
}

// Epoch returns the batches of one epoch, in order. The iteration ends at the first error,
// or when ctx is done.
func (l *Loader) Epoch(ctx context.Context, epoch int) iter.Seq2[*Batch, error] {
	return l.EpochFrom(ctx, epoch, 0)
}

// EpochFrom returns the batches of one epoch from batch first on (a run resumed in the
// middle of an epoch), without loading the ones before.
func (l *Loader) EpochFrom(ctx context.Context, epoch, first int) iter.Seq2[*Batch, error] {
	return func(yield func(*Batch, error) bool) {
		parent := ctx
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		order := l.Order(epoch)
		out := make(chan result, max(l.Prefetch, 1))
		go l.produce(ctx, epoch, order, first, out)
		for r := range out {
			if r.err != nil {
				yield(nil, r.err)
				return
			}
			b := r.batch
			if !yield(&b, nil) {
				return
			}
		}
		if err := parent.Err(); err != nil {
			yield(nil, err)
		}
	}
}

func (l *Loader) produce(ctx context.Context, epoch int, order []int, first int, out chan<- result) {
	defer close(out)
	workers := max(l.Workers, 1)
	for b := first; b < l.Len(); b++ {
		idx := order[b*l.BatchSize : min((b+1)*l.BatchSize, len(order))]
		batch, err := l.load(ctx, epoch, idx, workers)
		select {
		case out <- result{batch, err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// load transforms the samples idx with the workers and packs them.
func (l *Loader) load(ctx context.Context, epoch int, idx []int, workers int) (Batch, error) {
	samples := make([]Sample, len(idx))
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(workers, len(idx)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				samples[j], errs[j] = l.get(epoch, idx[j])
			}
		}()
	}
	for j := range idx {
		select {
		case next <- j:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Batch{}, err
	}
	for _, err := range errs {
		if err != nil {
			return Batch{}, err
		}
	}
	b, err := pack(samples)
	for _, s := range samples {
		putBuffer(s.Image.Pix) // packed: the loader's own copies
	}
	return b, err
}

// get returns sample i of an epoch; with SkipCorrupt, an unreadable image is replaced by
// another sample drawn from i's own random stream.
func (l *Loader) get(epoch, i int) (Sample, error) {
	s, err := l.Dataset.Get(i, SampleRNG(l.Seed, epoch, i))
	var le *LoadError
	if err == nil || !l.Dataset.SkipCorrupt || !errors.As(err, &le) {
		return s, err
	}
	pick := SampleRNG(l.Seed^0x736b6970, epoch, i)
	for range 10 {
		if l.OnSkip != nil {
			l.OnSkip(le.Path, le.Err)
		}
		j := pick.IntN(l.Dataset.Len())
		if s, err = l.Dataset.Get(j, SampleRNG(l.Seed, epoch, j)); err == nil || !errors.As(err, &le) {
			return s, err
		}
	}
	return Sample{}, fmt.Errorf("%w (and ten replacements could not be read either)", err)
}

func pack(samples []Sample) (Batch, error) {
	first := samples[0].Image
	det := samples[0].isDet()
	b := Batch{Height: first.Height, Width: first.Width,
		Indices: make([]int32, len(samples)), Labels: make([]int32, len(samples))}
	if det { // padded to the batch's largest image, as mmcv's collate
		for _, s := range samples {
			b.Height, b.Width = max(b.Height, s.Image.Height), max(b.Width, s.Image.Width)
		}
	}
	b.Images = make([]uint8, 0, len(samples)*b.Height*b.Width*3)
	for i, s := range samples {
		switch {
		case s.Image.Width == b.Width && s.Image.Height == b.Height:
			b.Images = append(b.Images, s.Image.Pix...)
		case det && s.isDet():
			for y := range s.Image.Height {
				b.Images = append(b.Images, s.Image.Pix[y*s.Image.Width*3:(y+1)*s.Image.Width*3]...)
				b.Images = append(b.Images, make([]uint8, (b.Width-s.Image.Width)*3)...)
			}
			b.Images = append(b.Images, make([]uint8, (b.Height-s.Image.Height)*b.Width*3)...)
		default:
			return Batch{}, fmt.Errorf("sample %d is %dx%d but sample %d is %dx%d: the pipeline must end at a fixed size",
				s.Index, s.Image.Width, s.Image.Height, samples[0].Index, b.Width, b.Height)
		}
		b.Targets = append(b.Targets, s.Targets...)
		b.Indices[i] = int32(s.Index)
		b.Labels[i] = int32(s.Label)
	}
	if first := samples[0]; first.Mask != nil || first.Seg != nil {
		if err := packSeg(&b, samples); err != nil {
			return Batch{}, err
		}
	}
	if det {
		b.OriShapes, b.ImgShapes = nil, nil
		for _, s := range samples {
			if !s.isDet() {
				return Batch{}, fmt.Errorf("sample %d is a detection sample but sample %d is not", samples[0].Index, s.Index)
			}
			oh, ow, ih, iw := shapes(s)
			b.OriShapes = append(b.OriShapes, int32(oh), int32(ow))
			b.ImgShapes = append(b.ImgShapes, int32(ih), int32(iw))
		}
		if err := packDet(&b, samples); err != nil {
			return Batch{}, err
		}
	}
	return b, nil
}

// shapes are a sample's size as decoded (ori_shape) and before Pad (img_shape).
func shapes(s Sample) (oh, ow, ih, iw int) {
	oh, ow = s.OriHeight, s.OriWidth
	if oh == 0 {
		oh, ow = s.Image.Height, s.Image.Width
	}
	ih, iw = s.PadHeight, s.PadWidth
	if ih == 0 {
		ih, iw = s.Image.Height, s.Image.Width
	}
	return oh, ow, ih, iw
}

// packSeg packs the segmentation parts of samples.
func packSeg(b *Batch, samples []Sample) error {
	if m := samples[0].Mask; m != nil {
		b.MaskHeight, b.MaskWidth = m.Height, m.Width
		b.Masks = make([]uint8, 0, len(samples)*len(m.Pix))
	}
	for _, s := range samples {
		if (s.Mask == nil) != (b.Masks == nil) {
			return fmt.Errorf("sample %d has a segmentation map but sample %d has none", samples[0].Index, s.Index)
		}
		if m := s.Mask; m != nil {
			if m.Width != b.MaskWidth || m.Height != b.MaskHeight {
				return fmt.Errorf("sample %d's segmentation map is %dx%d but sample %d's is %dx%d: the pipeline must end at a fixed size (or batches of one)",
					s.Index, m.Width, m.Height, samples[0].Index, b.MaskWidth, b.MaskHeight)
			}
			b.Masks = append(b.Masks, m.Pix...)
		}
		oh, ow, ih, iw := shapes(s)
		b.OriShapes = append(b.OriShapes, int32(oh), int32(ow))
		b.ImgShapes = append(b.ImgShapes, int32(ih), int32(iw))
	}
	return nil
}
