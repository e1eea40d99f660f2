//go:build amd64 && !purego

#include "textflag.h"

// Micro-kernels of Gemm: see gemm.go for the tiling. The float64 kernels below the
// float32 ones are the same code with 8-byte elements (PD for PS): a packed B row is
// 64 bytes in both, 16 float32 or 8 float64.

// AVX-512 micro-kernel: a 24x16 tile of C (float32) in Z8-Z31.
//
// Each step of k loads one row of the packed B panel (16 values, Z0) and does 24
// fused multiply-adds, each with one value of A broadcast from memory. A is read in
// place: row r of the tile, step q, is at a + r*rs + q*cs (elements), so the same code
// serves a (rs = lda, cs = 1) and aᵀ (rs = 1, cs = lda). Six pointers walk groups of
// four rows: (P), (P)(R9*1), (P)(R9*2), (P)(R10*1) with R9 = rs and R10 = 3*rs bytes.

#define FMA4_Z(P, C0, C1, C2, C3) \
	VFMADD231PS.BCST (P), Z0, C0; \
	VFMADD231PS.BCST (P)(R9*1), Z0, C1; \
	VFMADD231PS.BCST (P)(R9*2), Z0, C2; \
	VFMADD231PS.BCST (P)(R10*1), Z0, C3

#define STORE_Z(C) \
	VMOVUPS C, (DI); \
	ADDQ    SI, DI

#define ADDSTORE_Z(C) \
	VADDPS  (DI), C, C; \
	VMOVUPS C, (DI); \
	ADDQ    SI, DI

#define STEP_Z \
	VMOVUPS (BX), Z0; \
	FMA4_Z(AX, Z8, Z9, Z10, Z11); \
	FMA4_Z(DX, Z12, Z13, Z14, Z15); \
	FMA4_Z(R8, Z16, Z17, Z18, Z19); \
	FMA4_Z(R11, Z20, Z21, Z22, Z23); \
	FMA4_Z(R12, Z24, Z25, Z26, Z27); \
	FMA4_Z(R13, Z28, Z29, Z30, Z31); \
	ADDQ SI, AX; \
	ADDQ SI, DX; \
	ADDQ SI, R8; \
	ADDQ SI, R11; \
	ADDQ SI, R12; \
	ADDQ SI, R13; \
	ADDQ $64, BX

// func gemmAVX512F32(k int, a unsafe.Pointer, rs, cs int, b, c unsafe.Pointer, ldc int, acc bool)
TEXT ·gemmAVX512F32(SB), NOSPLIT, $0-57
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ rs+16(FP), R9
	MOVQ cs+24(FP), SI
	MOVQ b+32(FP), BX
	SHLQ $2, R9
	SHLQ $2, SI
	LEAQ (R9)(R9*2), R10
	LEAQ (AX)(R9*4), DX
	LEAQ (DX)(R9*4), R8
	LEAQ (R8)(R9*4), R11
	LEAQ (R11)(R9*4), R12
	LEAQ (R12)(R9*4), R13

	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	VPXORD Z24, Z24, Z24
	VPXORD Z25, Z25, Z25
	VPXORD Z26, Z26, Z26
	VPXORD Z27, Z27, Z27
	VPXORD Z28, Z28, Z28
	VPXORD Z29, Z29, Z29
	VPXORD Z30, Z30, Z30
	VPXORD Z31, Z31, Z31

	TESTQ CX, CX
	JEQ   store

	// With rs = 1 element (aᵀ read in place) the tile's rows lie side by side and each step
	// is a new cache line or two, cs apart: fetch them 16 steps ahead.
	CMPQ R9, $4
	JNE  loop
	MOVQ SI, DI
	SHLQ $4, DI

loopt:
	PREFETCHT0 (AX)(DI*1)
	PREFETCHT0 (R8)(DI*1)
	PREFETCHT0 (R12)(DI*1)
	PREFETCHT0 (R13)(DI*1)
	STEP_Z
	DECQ CX
	JNE  loopt
	JMP  store

loop:
	STEP_Z
	DECQ CX
	JNE  loop

store:
	MOVQ c+40(FP), DI
	MOVQ ldc+48(FP), SI
	SHLQ $2, SI
	CMPB acc+56(FP), $0
	JEQ  overwrite
	ADDSTORE_Z(Z8)
	ADDSTORE_Z(Z9)
	ADDSTORE_Z(Z10)
	ADDSTORE_Z(Z11)
	ADDSTORE_Z(Z12)
	ADDSTORE_Z(Z13)
	ADDSTORE_Z(Z14)
	ADDSTORE_Z(Z15)
	ADDSTORE_Z(Z16)
	ADDSTORE_Z(Z17)
	ADDSTORE_Z(Z18)
	ADDSTORE_Z(Z19)
	ADDSTORE_Z(Z20)
	ADDSTORE_Z(Z21)
	ADDSTORE_Z(Z22)
	ADDSTORE_Z(Z23)
	ADDSTORE_Z(Z24)
	ADDSTORE_Z(Z25)
	ADDSTORE_Z(Z26)
	ADDSTORE_Z(Z27)
	ADDSTORE_Z(Z28)
	ADDSTORE_Z(Z29)
	ADDSTORE_Z(Z30)
	ADDSTORE_Z(Z31)
	VZEROUPPER
	RET

overwrite:
	STORE_Z(Z8)
	STORE_Z(Z9)
	STORE_Z(Z10)
	STORE_Z(Z11)
	STORE_Z(Z12)
	STORE_Z(Z13)
	STORE_Z(Z14)
	STORE_Z(Z15)
	STORE_Z(Z16)
	STORE_Z(Z17)
	STORE_Z(Z18)
	STORE_Z(Z19)
	STORE_Z(Z20)
	STORE_Z(Z21)
	STORE_Z(Z22)
	STORE_Z(Z23)
	STORE_Z(Z24)
	STORE_Z(Z25)
	STORE_Z(Z26)
	STORE_Z(Z27)
	STORE_Z(Z28)
	STORE_Z(Z29)
	STORE_Z(Z30)
	STORE_Z(Z31)
	VZEROUPPER
	RET

// AVX2 micro-kernel: a 6x16 tile of C (float32) in Y4-Y15, two vectors a row.
//
// Each step of k loads one row of the packed B panel (Y0, Y1), broadcasts each of the
// six values of A in turn into Y2 and does two fused multiply-adds with it. A is read in
// place as in the AVX-512 kernel; rows 0-3 from AX, rows 4-5 from DX.

#define FMA2_Y(M, C0, C1) \
	VBROADCASTSS M, Y2; \
	VFMADD231PS  Y0, Y2, C0; \
	VFMADD231PS  Y1, Y2, C1

#define STORE_Y(C0, C1) \
	VMOVUPS C0, (DI); \
	VMOVUPS C1, 32(DI); \
	ADDQ    SI, DI

#define ADDSTORE_Y(C0, C1) \
	VADDPS  (DI), C0, C0; \
	VADDPS  32(DI), C1, C1; \
	VMOVUPS C0, (DI); \
	VMOVUPS C1, 32(DI); \
	ADDQ    SI, DI

#define STEP_Y \
	VMOVUPS (BX), Y0; \
	VMOVUPS 32(BX), Y1; \
	FMA2_Y((AX), Y4, Y5); \
	FMA2_Y((AX)(R9*1), Y6, Y7); \
	FMA2_Y((AX)(R9*2), Y8, Y9); \
	FMA2_Y((AX)(R10*1), Y10, Y11); \
	FMA2_Y((DX), Y12, Y13); \
	FMA2_Y((DX)(R9*1), Y14, Y15); \
	ADDQ SI, AX; \
	ADDQ SI, DX; \
	ADDQ $64, BX

// func gemmAVX2F32(k int, a unsafe.Pointer, rs, cs int, b, c unsafe.Pointer, ldc int, acc bool)
TEXT ·gemmAVX2F32(SB), NOSPLIT, $0-57
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ rs+16(FP), R9
	MOVQ cs+24(FP), SI
	MOVQ b+32(FP), BX
	SHLQ $2, R9
	SHLQ $2, SI
	LEAQ (R9)(R9*2), R10
	LEAQ (AX)(R9*4), DX

	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15

	TESTQ CX, CX
	JEQ   store

	// With rs = 1 element (aᵀ read in place) each step is a new cache line (or two), cs
	// apart: fetch them 16 steps ahead.
	CMPQ R9, $4
	JNE  loop
	MOVQ SI, DI
	SHLQ $4, DI

loopt:
	PREFETCHT0 (AX)(DI*1)
	PREFETCHT0 (DX)(DI*1)
	STEP_Y
	DECQ CX
	JNE  loopt
	JMP  store

loop:
	STEP_Y
	DECQ CX
	JNE  loop

store:
	MOVQ c+40(FP), DI
	MOVQ ldc+48(FP), SI
	SHLQ $2, SI
	CMPB acc+56(FP), $0
	JEQ  overwrite
	ADDSTORE_Y(Y4, Y5)
	ADDSTORE_Y(Y6, Y7)
	ADDSTORE_Y(Y8, Y9)
	ADDSTORE_Y(Y10, Y11)
	ADDSTORE_Y(Y12, Y13)
	ADDSTORE_Y(Y14, Y15)
	VZEROUPPER
	RET

overwrite:
	STORE_Y(Y4, Y5)
	STORE_Y(Y6, Y7)
	STORE_Y(Y8, Y9)
	STORE_Y(Y10, Y11)
	STORE_Y(Y12, Y13)
	STORE_Y(Y14, Y15)
	VZEROUPPER
	RET

// AVX-512 micro-kernel: a 24x8 tile of C (float64) in Z8-Z31.
//
// Each step of k loads one row of the packed B panel (8 values, Z0) and does 24
// fused multiply-adds, each with one value of A broadcast from memory. A is read in
// place: row r of the tile, step q, is at a + r*rs + q*cs (elements), so the same code
// serves a (rs = lda, cs = 1) and aᵀ (rs = 1, cs = lda). Six pointers walk groups of
// four rows: (P), (P)(R9*1), (P)(R9*2), (P)(R10*1) with R9 = rs and R10 = 3*rs bytes.

#define FMA4_ZD(P, C0, C1, C2, C3) \
	VFMADD231PD.BCST (P), Z0, C0; \
	VFMADD231PD.BCST (P)(R9*1), Z0, C1; \
	VFMADD231PD.BCST (P)(R9*2), Z0, C2; \
	VFMADD231PD.BCST (P)(R10*1), Z0, C3

#define STORE_ZD(C) \
	VMOVUPD C, (DI); \
	ADDQ    SI, DI

#define ADDSTORE_ZD(C) \
	VADDPD  (DI), C, C; \
	VMOVUPD C, (DI); \
	ADDQ    SI, DI

#define STEP_ZD \
	VMOVUPD (BX), Z0; \
	FMA4_ZD(AX, Z8, Z9, Z10, Z11); \
	FMA4_ZD(DX, Z12, Z13, Z14, Z15); \
	FMA4_ZD(R8, Z16, Z17, Z18, Z19); \
	FMA4_ZD(R11, Z20, Z21, Z22, Z23); \
	FMA4_ZD(R12, Z24, Z25, Z26, Z27); \
	FMA4_ZD(R13, Z28, Z29, Z30, Z31); \
	ADDQ SI, AX; \
	ADDQ SI, DX; \
	ADDQ SI, R8; \
	ADDQ SI, R11; \
	ADDQ SI, R12; \
	ADDQ SI, R13; \
	ADDQ $64, BX

// func gemmAVX512F64(k int, a unsafe.Pointer, rs, cs int, b, c unsafe.Pointer, ldc int, acc bool)
TEXT ·gemmAVX512F64(SB), NOSPLIT, $0-57
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ rs+16(FP), R9
	MOVQ cs+24(FP), SI
	MOVQ b+32(FP), BX
	SHLQ $3, R9
	SHLQ $3, SI
	LEAQ (R9)(R9*2), R10
	LEAQ (AX)(R9*4), DX
	LEAQ (DX)(R9*4), R8
	LEAQ (R8)(R9*4), R11
	LEAQ (R11)(R9*4), R12
	LEAQ (R12)(R9*4), R13

	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	VPXORD Z24, Z24, Z24
	VPXORD Z25, Z25, Z25
	VPXORD Z26, Z26, Z26
	VPXORD Z27, Z27, Z27
	VPXORD Z28, Z28, Z28
	VPXORD Z29, Z29, Z29
	VPXORD Z30, Z30, Z30
	VPXORD Z31, Z31, Z31

	TESTQ CX, CX
	JEQ   store

	// With rs = 1 element (aᵀ read in place) the tile's rows lie side by side and each step
	// is a new cache line or two, cs apart: fetch them 16 steps ahead.
	CMPQ R9, $8
	JNE  loop
	MOVQ SI, DI
	SHLQ $4, DI

loopt:
	PREFETCHT0 (AX)(DI*1)
	PREFETCHT0 (R8)(DI*1)
	PREFETCHT0 (R12)(DI*1)
	PREFETCHT0 (R13)(DI*1)
	STEP_ZD
	DECQ CX
	JNE  loopt
	JMP  store

loop:
	STEP_ZD
	DECQ CX
	JNE  loop

store:
	MOVQ c+40(FP), DI
	MOVQ ldc+48(FP), SI
	SHLQ $3, SI
	CMPB acc+56(FP), $0
	JEQ  overwrite
	ADDSTORE_ZD(Z8)
	ADDSTORE_ZD(Z9)
	ADDSTORE_ZD(Z10)
	ADDSTORE_ZD(Z11)
	ADDSTORE_ZD(Z12)
	ADDSTORE_ZD(Z13)
	ADDSTORE_ZD(Z14)
	ADDSTORE_ZD(Z15)
	ADDSTORE_ZD(Z16)
	ADDSTORE_ZD(Z17)
	ADDSTORE_ZD(Z18)
	ADDSTORE_ZD(Z19)
	ADDSTORE_ZD(Z20)
	ADDSTORE_ZD(Z21)
	ADDSTORE_ZD(Z22)
	ADDSTORE_ZD(Z23)
	ADDSTORE_ZD(Z24)
	ADDSTORE_ZD(Z25)
	ADDSTORE_ZD(Z26)
	ADDSTORE_ZD(Z27)
	ADDSTORE_ZD(Z28)
	ADDSTORE_ZD(Z29)
	ADDSTORE_ZD(Z30)
	ADDSTORE_ZD(Z31)
	VZEROUPPER
	RET

overwrite:
	STORE_ZD(Z8)
	STORE_ZD(Z9)
	STORE_ZD(Z10)
	STORE_ZD(Z11)
	STORE_ZD(Z12)
	STORE_ZD(Z13)
	STORE_ZD(Z14)
	STORE_ZD(Z15)
	STORE_ZD(Z16)
	STORE_ZD(Z17)
	STORE_ZD(Z18)
	STORE_ZD(Z19)
	STORE_ZD(Z20)
	STORE_ZD(Z21)
	STORE_ZD(Z22)
	STORE_ZD(Z23)
	STORE_ZD(Z24)
	STORE_ZD(Z25)
	STORE_ZD(Z26)
	STORE_ZD(Z27)
	STORE_ZD(Z28)
	STORE_ZD(Z29)
	STORE_ZD(Z30)
	STORE_ZD(Z31)
	VZEROUPPER
	RET

// AVX2 micro-kernel: a 6x8 tile of C (float64) in Y4-Y15, two vectors a row.
//
// Each step of k loads one row of the packed B panel (Y0, Y1), broadcasts each of the
// six values of A in turn into Y2 and does two fused multiply-adds with it. A is read in
// place as in the AVX-512 kernel; rows 0-3 from AX, rows 4-5 from DX.

#define FMA2_YD(M, C0, C1) \
	VBROADCASTSD M, Y2; \
	VFMADD231PD  Y0, Y2, C0; \
	VFMADD231PD  Y1, Y2, C1

#define STORE_YD(C0, C1) \
	VMOVUPD C0, (DI); \
	VMOVUPD C1, 32(DI); \
	ADDQ    SI, DI

#define ADDSTORE_YD(C0, C1) \
	VADDPD  (DI), C0, C0; \
	VADDPD  32(DI), C1, C1; \
	VMOVUPD C0, (DI); \
	VMOVUPD C1, 32(DI); \
	ADDQ    SI, DI

#define STEP_YD \
	VMOVUPD (BX), Y0; \
	VMOVUPD 32(BX), Y1; \
	FMA2_YD((AX), Y4, Y5); \
	FMA2_YD((AX)(R9*1), Y6, Y7); \
	FMA2_YD((AX)(R9*2), Y8, Y9); \
	FMA2_YD((AX)(R10*1), Y10, Y11); \
	FMA2_YD((DX), Y12, Y13); \
	FMA2_YD((DX)(R9*1), Y14, Y15); \
	ADDQ SI, AX; \
	ADDQ SI, DX; \
	ADDQ $64, BX

// func gemmAVX2F64(k int, a unsafe.Pointer, rs, cs int, b, c unsafe.Pointer, ldc int, acc bool)
TEXT ·gemmAVX2F64(SB), NOSPLIT, $0-57
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ rs+16(FP), R9
	MOVQ cs+24(FP), SI
	MOVQ b+32(FP), BX
	SHLQ $3, R9
	SHLQ $3, SI
	LEAQ (R9)(R9*2), R10
	LEAQ (AX)(R9*4), DX

	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11
	VXORPD Y12, Y12, Y12
	VXORPD Y13, Y13, Y13
	VXORPD Y14, Y14, Y14
	VXORPD Y15, Y15, Y15

	TESTQ CX, CX
	JEQ   store

	// With rs = 1 element (aᵀ read in place) each step is a new cache line (or two), cs
	// apart: fetch them 16 steps ahead.
	CMPQ R9, $8
	JNE  loop
	MOVQ SI, DI
	SHLQ $4, DI

loopt:
	PREFETCHT0 (AX)(DI*1)
	PREFETCHT0 (DX)(DI*1)
	STEP_YD
	DECQ CX
	JNE  loopt
	JMP  store

loop:
	STEP_YD
	DECQ CX
	JNE  loop

store:
	MOVQ c+40(FP), DI
	MOVQ ldc+48(FP), SI
	SHLQ $3, SI
	CMPB acc+56(FP), $0
	JEQ  overwrite
	ADDSTORE_YD(Y4, Y5)
	ADDSTORE_YD(Y6, Y7)
	ADDSTORE_YD(Y8, Y9)
	ADDSTORE_YD(Y10, Y11)
	ADDSTORE_YD(Y12, Y13)
	ADDSTORE_YD(Y14, Y15)
	VZEROUPPER
	RET

overwrite:
	STORE_YD(Y4, Y5)
	STORE_YD(Y6, Y7)
	STORE_YD(Y8, Y9)
	STORE_YD(Y10, Y11)
	STORE_YD(Y12, Y13)
	STORE_YD(Y14, Y15)
	VZEROUPPER
	RET
