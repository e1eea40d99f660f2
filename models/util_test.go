package models_test

import (
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

func shapesU8(dims ...int) shapes.Shape { return shapes.Make(dtypes.Uint8, dims...) }

func shapesF32(dims ...int) shapes.Shape { return shapes.Make(dtypes.Float32, dims...) }
