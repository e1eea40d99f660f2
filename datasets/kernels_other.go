//go:build !amd64

package datasets

const hasAVX2 = false

func resampleRowAVX2(dst, rest []uint8, c coefficients) int               { return 0 }
func resampleColumnAVX2(dst []uint8, src view, c coefficients, y int) int { return 0 }

func blendWithAVX2(pix, gray []uint8, a float32) int { return 0 }

func hueWithAVX2(pix []uint8, shift uint8) int { return 0 }

func blendLevelWithAVX2(pix []uint8, level, a float32) int { return 0 }
