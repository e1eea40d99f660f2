//go:build amd64 && !purego

#include "textflag.h"

// AVX-512 inner loops of batch norm for float32. Each walks the rows of a block x (len(x)/c
// rows of c features, c > 0) along the features: full vectors first, then a masked tail.
// Statistics are accumulated in float64 (8 lanes, converted with VCVTPS2PD); the elementwise
// passes work in float32 (16 lanes) with per-feature coefficients packed per vector of 16
// features (see bnPack in batchnorm.go).

// TAILMASK sets K1 to the low (c mod lanes) bits: c in DX, count left in R12.
#define TAILMASK(lanesMinus1) \
	MOVQ  DX, R12          \
	ANDQ  $lanesMinus1, R12 \
	MOVQ  R12, CX          \
	MOVQ  $1, AX           \
	SHLQ  CX, AX           \
	DECQ  AX               \
	KMOVW AX, K1

// func bnSumF32AVX512(x []float32, s []float64)
TEXT ·bnSumF32AVX512(SB), NOSPLIT, $0-48
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), BX
	MOVQ s_base+24(FP), DI
	MOVQ s_len+32(FP), DX
	TAILMASK(7)

sum_row:
	CMPQ BX, DX
	JL   sum_done
	XORQ AX, AX
	MOVQ DX, CX
	SHRQ $3, CX

sum_chunk:
	TESTQ     CX, CX
	JZ        sum_tail
	VCVTPS2PD (SI), Z0
	VADDPD    (DI)(AX*1), Z0, Z0
	VMOVUPD   Z0, (DI)(AX*1)
	ADDQ      $32, SI
	ADDQ      $64, AX
	DECQ      CX
	JMP       sum_chunk

sum_tail:
	TESTQ     R12, R12
	JZ        sum_next
	VMOVUPS.Z (SI), K1, Y0
	VCVTPS2PD Y0, Z0
	VMOVUPD.Z (DI)(AX*1), K1, Z1
	VADDPD    Z1, Z0, Z0
	VMOVUPD   Z0, K1, (DI)(AX*1)
	LEAQ      (SI)(R12*4), SI

sum_next:
	SUBQ DX, BX
	JMP  sum_row

sum_done:
	VZEROUPPER
	RET

// func bnSqDevF32AVX512(x []float32, mean []float64, sq []float64)
TEXT ·bnSqDevF32AVX512(SB), NOSPLIT, $0-72
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), BX
	MOVQ mean_base+24(FP), R9
	MOVQ mean_len+32(FP), DX
	MOVQ sq_base+48(FP), DI
	TAILMASK(7)

sq_row:
	CMPQ BX, DX
	JL   sq_done
	XORQ AX, AX
	MOVQ DX, CX
	SHRQ $3, CX

sq_chunk:
	TESTQ       CX, CX
	JZ          sq_tail
	VCVTPS2PD   (SI), Z0
	VSUBPD      (R9)(AX*1), Z0, Z0
	VMOVUPD     (DI)(AX*1), Z1
	VFMADD231PD Z0, Z0, Z1
	VMOVUPD     Z1, (DI)(AX*1)
	ADDQ        $32, SI
	ADDQ        $64, AX
	DECQ        CX
	JMP         sq_chunk

sq_tail:
	TESTQ       R12, R12
	JZ          sq_next
	VMOVUPS.Z   (SI), K1, Y0
	VCVTPS2PD   Y0, Z0
	VMOVUPD.Z   (R9)(AX*1), K1, Z2
	VSUBPD      Z2, Z0, Z0
	VMOVUPD.Z   (DI)(AX*1), K1, Z1
	VFMADD231PD Z0, Z0, Z1
	VMOVUPD     Z1, K1, (DI)(AX*1)
	LEAQ        (SI)(R12*4), SI

sq_next:
	SUBQ DX, BX
	JMP  sq_row

sq_done:
	VZEROUPPER
	RET

// func bnGradSumsF32AVX512(x, y, dy []float32, mean, sg, sgx []float64)
// With y empty g = dy, else g = dy where y > 0 and 0 elsewhere; sg += g, sgx += g·(x-mean).
TEXT ·bnGradSumsF32AVX512(SB), NOSPLIT, $0-144
	MOVQ    x_base+0(FP), SI
	MOVQ    x_len+8(FP), BX
	MOVQ    y_base+24(FP), DI
	MOVQ    y_len+32(FP), R13
	MOVQ    dy_base+48(FP), R8
	MOVQ    mean_base+72(FP), R9
	MOVQ    mean_len+80(FP), DX
	MOVQ    sg_base+96(FP), R10
	MOVQ    sgx_base+120(FP), R11
	TAILMASK(7)
	KXNORW  K3, K3, K3
	VPXORD  Z31, Z31, Z31

gs_row:
	CMPQ BX, DX
	JL   gs_done
	XORQ AX, AX
	MOVQ DX, CX
	SHRQ $3, CX

gs_chunk:
	TESTQ  CX, CX
	JZ     gs_tail
	KMOVW  K3, K2
	TESTQ  R13, R13
	JZ     gs_g
	VCMPPS $1, (DI), Y31, K2

gs_g:
	VMOVUPS.Z   (R8), K2, Y0
	VCVTPS2PD   Y0, Z0
	VCVTPS2PD   (SI), Z1
	VSUBPD      (R9)(AX*1), Z1, Z1
	VADDPD      (R10)(AX*1), Z0, Z2
	VMOVUPD     Z2, (R10)(AX*1)
	VFMADD213PD (R11)(AX*1), Z0, Z1
	VMOVUPD     Z1, (R11)(AX*1)
	ADDQ        $32, SI
	ADDQ        $32, DI
	ADDQ        $32, R8
	ADDQ        $64, AX
	DECQ        CX
	JMP         gs_chunk

gs_tail:
	TESTQ     R12, R12
	JZ        gs_next
	KMOVW     K1, K2
	TESTQ     R13, R13
	JZ        gs_tg
	VMOVUPS.Z (DI), K1, Y4
	VCMPPS    $1, Y4, Y31, K1, K2

gs_tg:
	VMOVUPS.Z   (R8), K2, Y0
	VCVTPS2PD   Y0, Z0
	VMOVUPS.Z   (SI), K1, Y1
	VCVTPS2PD   Y1, Z1
	VMOVUPD.Z   (R9)(AX*1), K1, Z5
	VSUBPD      Z5, Z1, Z1
	VMOVUPD.Z   (R10)(AX*1), K1, Z2
	VADDPD      Z2, Z0, Z2
	VMOVUPD     Z2, K1, (R10)(AX*1)
	VMOVUPD.Z   (R11)(AX*1), K1, Z6
	VFMADD231PD Z0, Z1, Z6
	VMOVUPD     Z6, K1, (R11)(AX*1)
	LEAQ        (SI)(R12*4), SI
	LEAQ        (DI)(R12*4), DI
	LEAQ        (R8)(R12*4), R8

gs_next:
	SUBQ DX, BX
	JMP  gs_row

gs_done:
	VZEROUPPER
	RET

// func bnApplyF32AVX512(x, y, coef []float32, c int, relu bool)
// y = (x-mean)·a + b, then max(0, ·) if relu; coef holds [mean, a, b] per 16 features.
TEXT ·bnApplyF32AVX512(SB), NOSPLIT, $0-81
	MOVQ    x_base+0(FP), SI
	MOVQ    x_len+8(FP), BX
	MOVQ    y_base+24(FP), DI
	MOVQ    coef_base+48(FP), R9
	MOVQ    c+72(FP), DX
	MOVBQZX relu+80(FP), R13
	TAILMASK(15)
	VPXORD  Z31, Z31, Z31

ap_row:
	CMPQ BX, DX
	JL   ap_done
	MOVQ R9, R10
	MOVQ DX, CX
	SHRQ $4, CX

ap_chunk:
	TESTQ       CX, CX
	JZ          ap_tail
	VMOVUPS     (SI), Z0
	VSUBPS      (R10), Z0, Z0
	VMOVUPS     64(R10), Z1
	VFMADD213PS 128(R10), Z1, Z0
	TESTQ       R13, R13
	JZ          ap_store
	VMAXPS      Z0, Z31, Z0

ap_store:
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	ADDQ    $192, R10
	DECQ    CX
	JMP     ap_chunk

ap_tail:
	TESTQ       R12, R12
	JZ          ap_next
	VMOVUPS.Z   (SI), K1, Z0
	VSUBPS      (R10), Z0, Z0
	VMOVUPS     64(R10), Z1
	VFMADD213PS 128(R10), Z1, Z0
	TESTQ       R13, R13
	JZ          ap_tstore
	VMAXPS      Z0, Z31, Z0

ap_tstore:
	VMOVUPS Z0, K1, (DI)
	LEAQ    (SI)(R12*4), SI
	LEAQ    (DI)(R12*4), DI

ap_next:
	SUBQ DX, BX
	JMP  ap_row

ap_done:
	VZEROUPPER
	RET

// func bnDxF32AVX512(x, y, dy, dx, coef []float32, c int)
// dx = k1·g + kx·(x-mean) + k0 with g as in bnGradSumsF32AVX512; coef holds
// [mean, k1, kx, k0] per 16 features.
TEXT ·bnDxF32AVX512(SB), NOSPLIT, $0-128
	MOVQ   x_base+0(FP), SI
	MOVQ   x_len+8(FP), BX
	MOVQ   y_base+24(FP), DI
	MOVQ   y_len+32(FP), R13
	MOVQ   dy_base+48(FP), R8
	MOVQ   dx_base+72(FP), R11
	MOVQ   coef_base+96(FP), R9
	MOVQ   c+120(FP), DX
	TAILMASK(15)
	KXNORW K3, K3, K3
	VPXORD Z31, Z31, Z31

dx_row:
	CMPQ BX, DX
	JL   dx_done
	MOVQ R9, R10
	MOVQ DX, CX
	SHRQ $4, CX

dx_chunk:
	TESTQ  CX, CX
	JZ     dx_tail
	KMOVW  K3, K2
	TESTQ  R13, R13
	JZ     dx_g
	VCMPPS $1, (DI), Z31, K2

dx_g:
	VMOVUPS.Z   (R8), K2, Z0
	VMOVUPS     (SI), Z1
	VSUBPS      (R10), Z1, Z1
	VMULPS      128(R10), Z1, Z1
	VADDPS      192(R10), Z1, Z1
	VFMADD231PS 64(R10), Z0, Z1
	VMOVUPS     Z1, (R11)
	ADDQ        $64, SI
	ADDQ        $64, DI
	ADDQ        $64, R8
	ADDQ        $64, R11
	ADDQ        $256, R10
	DECQ        CX
	JMP         dx_chunk

dx_tail:
	TESTQ     R12, R12
	JZ        dx_next
	KMOVW     K1, K2
	TESTQ     R13, R13
	JZ        dx_tg
	VMOVUPS.Z (DI), K1, Z4
	VCMPPS    $1, Z4, Z31, K1, K2

dx_tg:
	VMOVUPS.Z   (R8), K2, Z0
	VMOVUPS.Z   (SI), K1, Z1
	VSUBPS      (R10), Z1, Z1
	VMULPS      128(R10), Z1, Z1
	VADDPS      192(R10), Z1, Z1
	VFMADD231PS 64(R10), Z0, Z1
	VMOVUPS     Z1, K1, (R11)
	LEAQ        (SI)(R12*4), SI
	LEAQ        (DI)(R12*4), DI
	LEAQ        (R8)(R12*4), R8
	LEAQ        (R11)(R12*4), R11

dx_next:
	SUBQ DX, BX
	JMP  dx_row

dx_done:
	VZEROUPPER
	RET
