#include "textflag.h"

// The AVX2 kernels (kernels_amd64.go): the resampling passes and the saturation blend.
// The resampling kernels compute what the Go code computes: int32 sums, from 1<<21, of
// uint8 values times int32 weights, shifted right arithmetically by 22 and clipped to 0-255
// (VPACKSSDW then VPACKUSWB clip as fixedToByte does: the shifted sums lie within +-2^10).

// func rowsAVX2(dst *uint8, n int, row *uint8, start, count *int, weights *int32, size int)
TEXT ·rowsAVX2(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ n+8(FP), CX
	MOVQ row+16(FP), SI
	MOVQ start+24(FP), R8
	MOVQ count+32(FP), R9
	MOVQ weights+40(FP), R10
	MOVQ size+48(FP), R11
	SHLQ $2, R11                // bytes of weights per output pixel
	MOVL $0x200000, AX
	VMOVD AX, X7
	VPBROADCASTD X7, X7         // four halves
	TESTQ CX, CX
	JZ rows_done

rows_pixel:
	VMOVDQA X7, X0
	MOVQ (R8), AX
	LEAQ (AX)(AX*2), AX
	LEAQ (SI)(AX*1), R12        // the first tap's pixel
	MOVQ (R9), R13              // taps
	MOVQ R10, BX                // their weights
	TESTQ R13, R13
	JZ rows_store

rows_tap:
	VPMOVZXBD (R12), X1         // R, G, B and the next byte as four int32
	VPBROADCASTD (BX), X2
	VPMULLD X2, X1, X1
	VPADDD X1, X0, X0
	ADDQ $3, R12
	ADDQ $4, BX
	DECQ R13
	JNZ rows_tap

rows_store:
	VPSRAD $22, X0, X0
	VPACKSSDW X0, X0, X0
	VPACKUSWB X0, X0, X0
	VMOVD X0, (DI)              // R, G, B and a byte the next pixel overwrites
	ADDQ $3, DI
	ADDQ $8, R8
	ADDQ $8, R9
	ADDQ R11, R10
	DECQ CX
	JNZ rows_pixel

rows_done:
	RET

// func columnsAVX2(dst *uint8, n int, src *uint8, stride int, weights *int32, taps int)
TEXT ·columnsAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ n+8(FP), CX
	MOVQ src+16(FP), SI
	MOVQ stride+24(FP), DX
	MOVQ weights+32(FP), R8
	MOVQ taps+40(FP), R9
	MOVL $0x200000, AX
	VMOVD AX, X7
	VPBROADCASTD X7, Y7         // eight halves

cols16:
	CMPQ CX, $16
	JLT cols8
	VMOVDQA Y7, Y0
	VMOVDQA Y7, Y1
	MOVQ SI, R10
	MOVQ R8, R11
	MOVQ R9, R12

cols16_tap:
	VPBROADCASTD (R11), Y2
	VPMOVZXBD (R10), Y3
	VPMOVZXBD 8(R10), Y4
	VPMULLD Y2, Y3, Y3
	VPMULLD Y2, Y4, Y4
	VPADDD Y3, Y0, Y0
	VPADDD Y4, Y1, Y1
	ADDQ DX, R10
	ADDQ $4, R11
	DECQ R12
	JNZ cols16_tap

	VPSRAD $22, Y0, Y0
	VPSRAD $22, Y1, Y1
	VPACKSSDW Y1, Y0, Y0        // per 128-bit lane: values 0-3, 8-11 | 4-7, 12-15
	VPERMQ $0xD8, Y0, Y0        // 0-3, 4-7, 8-11, 12-15
	VEXTRACTI128 $1, Y0, X1
	VPACKUSWB X1, X0, X0
	VMOVDQU X0, (DI)
	ADDQ $16, DI
	ADDQ $16, SI
	SUBQ $16, CX
	JMP cols16

cols8:
	CMPQ CX, $8
	JLT cols_done
	VMOVDQA Y7, Y0
	MOVQ SI, R10
	MOVQ R8, R11
	MOVQ R9, R12

cols8_tap:
	VPBROADCASTD (R11), Y2
	VPMOVZXBD (R10), Y3
	VPMULLD Y2, Y3, Y3
	VPADDD Y3, Y0, Y0
	ADDQ DX, R10
	ADDQ $4, R11
	DECQ R12
	JNZ cols8_tap

	VPSRAD $22, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPACKSSDW X1, X0, X0
	VPACKUSWB X0, X0, X0
	MOVQ X0, (DI)
	ADDQ $8, DI
	ADDQ $8, SI
	SUBQ $8, CX
	JMP cols8

cols_done:
	VZEROUPPER
	RET

// func blendAVX2(pix, gray *uint8, n int, a float32)
// pix[i] = clip(trunc(d + a*(v-d))), d = gray[i], v = pix[i], in float32, for n (a multiple
// of 8) values: Pillow's blend, as blendValue computes it.
TEXT ·blendAVX2(SB), NOSPLIT, $0-28
	MOVQ pix+0(FP), DI
	MOVQ gray+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS a+24(FP), Y6
	VXORPS Y5, Y5, Y5           // 0
	MOVL $0x437f0000, AX        // 255.0
	VMOVD AX, X4
	VBROADCASTSS X4, Y4

blend8:
	CMPQ CX, $8
	JLT blend_done
	VPMOVZXBD (DI), Y0
	VPMOVZXBD (SI), Y1
	VCVTDQ2PS Y0, Y0            // v
	VCVTDQ2PS Y1, Y1            // d
	VSUBPS Y1, Y0, Y0           // v - d
	VMULPS Y6, Y0, Y0           // a * (v - d)
	VADDPS Y0, Y1, Y0           // d + a * (v - d)
	VMAXPS Y5, Y0, Y0
	VMINPS Y4, Y0, Y0
	VCVTTPS2DQ Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPACKSSDW X1, X0, X0
	VPACKUSWB X0, X0, X0
	MOVQ X0, (DI)
	ADDQ $8, DI
	ADDQ $8, SI
	SUBQ $8, CX
	JMP blend8

blend_done:
	VZEROUPPER
	RET
