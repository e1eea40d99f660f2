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

// Constants of the hue kernel.
DATA hueShufR<>+0(SB)/8, $0x8080808009060300
DATA hueShufR<>+8(SB)/8, $0x8080808080808080
GLOBL hueShufR<>(SB), RODATA|NOPTR, $16
DATA hueShufG<>+0(SB)/8, $0x808080800a070401
DATA hueShufG<>+8(SB)/8, $0x8080808080808080
GLOBL hueShufG<>(SB), RODATA|NOPTR, $16
DATA hueShufB<>+0(SB)/8, $0x808080800b080502
DATA hueShufB<>+8(SB)/8, $0x8080808080808080
GLOBL hueShufB<>(SB), RODATA|NOPTR, $16
// Bytes 0-3 of a register to bytes 0, 3, 6, 9 (red), 1, 4, 7, 10 (green), 2, 5, 8, 11 (blue).
DATA hueOutR<>+0(SB)/8, $0x8002808001808000
DATA hueOutR<>+8(SB)/8, $0x8080808080800380
GLOBL hueOutR<>(SB), RODATA|NOPTR, $16
DATA hueOutG<>+0(SB)/8, $0x0280800180800080
DATA hueOutG<>+8(SB)/8, $0x8080808080038080
GLOBL hueOutG<>(SB), RODATA|NOPTR, $16
DATA hueOutB<>+0(SB)/8, $0x8080018080008080
DATA hueOutB<>+8(SB)/8, $0x8080808003808002
GLOBL hueOutB<>(SB), RODATA|NOPTR, $16
// Doubles, four of each: 1, 2, 4, 6, 255, 0.5, 1/6, 1/255.
DATA hueD<>+0(SB)/8, $0x3ff0000000000000
DATA hueD<>+8(SB)/8, $0x3ff0000000000000
DATA hueD<>+16(SB)/8, $0x3ff0000000000000
DATA hueD<>+24(SB)/8, $0x3ff0000000000000
DATA hueD<>+32(SB)/8, $0x4000000000000000
DATA hueD<>+40(SB)/8, $0x4000000000000000
DATA hueD<>+48(SB)/8, $0x4000000000000000
DATA hueD<>+56(SB)/8, $0x4000000000000000
DATA hueD<>+64(SB)/8, $0x4010000000000000
DATA hueD<>+72(SB)/8, $0x4010000000000000
DATA hueD<>+80(SB)/8, $0x4010000000000000
DATA hueD<>+88(SB)/8, $0x4010000000000000
DATA hueD<>+96(SB)/8, $0x4018000000000000
DATA hueD<>+104(SB)/8, $0x4018000000000000
DATA hueD<>+112(SB)/8, $0x4018000000000000
DATA hueD<>+120(SB)/8, $0x4018000000000000
DATA hueD<>+128(SB)/8, $0x406fe00000000000
DATA hueD<>+136(SB)/8, $0x406fe00000000000
DATA hueD<>+144(SB)/8, $0x406fe00000000000
DATA hueD<>+152(SB)/8, $0x406fe00000000000
DATA hueD<>+160(SB)/8, $0x3fe0000000000000
DATA hueD<>+168(SB)/8, $0x3fe0000000000000
DATA hueD<>+176(SB)/8, $0x3fe0000000000000
DATA hueD<>+184(SB)/8, $0x3fe0000000000000
DATA hueD<>+192(SB)/8, $0x3fc5555555555555
DATA hueD<>+200(SB)/8, $0x3fc5555555555555
DATA hueD<>+208(SB)/8, $0x3fc5555555555555
DATA hueD<>+216(SB)/8, $0x3fc5555555555555
DATA hueD<>+224(SB)/8, $0x3f70101010101010
DATA hueD<>+232(SB)/8, $0x3f70101010101010
DATA hueD<>+240(SB)/8, $0x3f70101010101010
DATA hueD<>+248(SB)/8, $0x3f70101010101010
GLOBL hueD<>(SB), RODATA|NOPTR, $256
// Int32s, four of each: 0, 1, 2, 3, 4, 5, 6, 255.
DATA hueI<>+0(SB)/8, $0
DATA hueI<>+8(SB)/8, $0
DATA hueI<>+16(SB)/8, $0x0000000100000001
DATA hueI<>+24(SB)/8, $0x0000000100000001
DATA hueI<>+32(SB)/8, $0x0000000200000002
DATA hueI<>+40(SB)/8, $0x0000000200000002
DATA hueI<>+48(SB)/8, $0x0000000300000003
DATA hueI<>+56(SB)/8, $0x0000000300000003
DATA hueI<>+64(SB)/8, $0x0000000400000004
DATA hueI<>+72(SB)/8, $0x0000000400000004
DATA hueI<>+80(SB)/8, $0x0000000500000005
DATA hueI<>+88(SB)/8, $0x0000000500000005
DATA hueI<>+96(SB)/8, $0x0000000600000006
DATA hueI<>+104(SB)/8, $0x0000000600000006
DATA hueI<>+112(SB)/8, $0x000000ff000000ff
DATA hueI<>+120(SB)/8, $0x000000ff000000ff
GLOBL hueI<>(SB), RODATA|NOPTR, $128

// roundHalfUp rounds the non-negative doubles of R half away from zero (C's round), as
// trunc(x) plus one where x - trunc(x) >= 0.5 (exact: x < 2^52). Y8 holds ones.
#define roundHalfUp(R) \
	VROUNDPD $3, R, Y4 \
	VSUBPD Y4, R, Y9 \
	VCMPPD $0x0D, hueD<>+160(SB), Y9, Y9 \
	VANDPD Y8, Y9, Y9 \
	VADDPD Y9, Y4, R

// func hueAVX2(pix *uint8, n int, shift int32)
// Shifts the hue of n pixels (a multiple of 4; the buffer holds 4 bytes more) through
// Pillow's 8-bit HSV, as rgbToHSV, then hsvToRGB of (h + shift) & 255, compute it: the same
// float and double operations, four pixels at a time, but for the three divisions by
// constants (h / 6.0, h * 6.0 / 255.0, s / 255.0), which are multiplications by the
// reciprocals: their results differ in some last bits, but not the bytes they lead to,
// which the test of every colour shows for the first and enumerating the 256 inputs for
// the others.
TEXT ·hueAVX2(SB), NOSPLIT, $0-20
	MOVQ pix+0(FP), DI
	MOVQ n+8(FP), CX
	VMOVUPD hueD<>+0(SB), Y8    // 1
	VMOVUPD hueD<>+128(SB), Y10 // 255
	VMOVUPD hueD<>+96(SB), Y11  // 6

hue4:
	CMPQ CX, $4
	JLT hue_done
	VMOVDQU (DI), X12
	VPSHUFB hueShufR<>(SB), X12, X0
	VPSHUFB hueShufG<>(SB), X12, X1
	VPSHUFB hueShufB<>(SB), X12, X2
	VPMOVZXBD X0, X0            // r
	VPMOVZXBD X1, X1            // g
	VPMOVZXBD X2, X2            // b
	VPMAXSD X1, X0, X3
	VPMAXSD X2, X3, X3          // max = v
	VPMINSD X1, X0, X4
	VPMINSD X2, X4, X4
	VPSUBD X4, X3, X4           // cr, as an integer
	VCVTDQ2PS X4, X5            // cr
	VCVTDQ2PS X3, X6
	VDIVPS X6, X5, X6           // s = cr / max
	VPSUBD X0, X3, X7
	VCVTDQ2PS X7, X7
	VDIVPS X5, X7, X7           // rc
	VPSUBD X1, X3, X12
	VCVTDQ2PS X12, X12
	VDIVPS X5, X12, X12         // gc
	VPSUBD X2, X3, X13
	VCVTDQ2PS X13, X13
	VDIVPS X5, X13, X13         // bc
	VPCMPEQD X3, X0, X0         // r == max
	VPCMPEQD X3, X1, X1         // g == max
	VSUBPS X12, X13, X2         // h if r == max: bc - gc
	VCVTPS2PD X7, Y5
	VADDPD hueD<>+32(SB), Y5, Y5
	VCVTPS2PD X13, Y14
	VSUBPD Y14, Y5, Y5
	VCVTPD2PSY Y5, X5           // h if g == max: 2.0 + rc - bc, in double
	VCVTPS2PD X12, Y14
	VADDPD hueD<>+64(SB), Y14, Y14
	VCVTPS2PD X7, Y7
	VSUBPD Y7, Y14, Y14
	VCVTPD2PSY Y14, X14         // else: 4.0 + gc - rc
	VBLENDVPS X1, X5, X14, X14
	VBLENDVPS X0, X2, X14, X14  // h
	VCVTPS2PD X14, Y14
	VMULPD hueD<>+192(SB), Y14, Y14
	VADDPD Y8, Y14, Y14         // h / 6.0 + 1.0 (as h * (1/6.0): see below)
	VCMPPD $0x0D, Y8, Y14, Y5
	VANDPD Y8, Y5, Y5
	VSUBPD Y5, Y14, Y14         // fmod(h / 6.0 + 1.0, 1.0)
	VCVTPD2PSY Y14, X14         // stored in a float
	VCVTPS2PD X14, Y14
	VMULPD Y10, Y14, Y14
	VCVTTPD2DQY Y14, X14        // the 8-bit hue
	VCVTPS2PD X6, Y6
	VMULPD Y10, Y6, Y6
	VCVTTPD2DQY Y6, X6          // the 8-bit saturation
	VPXOR X2, X2, X2
	VPCMPEQD X2, X4, X4         // gray
	VPCMPEQD X2, X6, X0         // no saturation
	VPOR X4, X0, X0             // both: v, v, v
	MOVL shift+16(FP), AX
	VMOVD AX, X4
	VPBROADCASTD X4, X4
	VPADDD X4, X14, X14
	VPAND hueI<>+112(SB), X14, X14 // the shifted hue
	VCVTDQ2PD X14, Y14
	VMULPD Y11, Y14, Y14
	VMULPD hueD<>+224(SB), Y14, Y14 // h * 6.0 / 255.0
	VROUNDPD $1, Y14, Y13       // i = floor of it
	VSUBPD Y13, Y14, Y14
	VCVTPD2PSY Y14, X14         // f
	VCVTTPD2DQY Y13, X13        // i
	VCVTDQ2PD X6, Y6
	VMULPD hueD<>+224(SB), Y6, Y6
	VCVTPD2PSY Y6, X6           // fs = s / 255.0
	VCVTDQ2PD X3, Y12           // v
	VCVTPS2PD X6, Y5            // fs, in double
	VSUBPD Y5, Y8, Y7
	VMULPD Y7, Y12, Y7
	roundHalfUp(Y7)
	VCVTTPD2DQY Y7, X7          // p = round(v * (1.0 - fs))
	VMULPS X14, X6, X1
	VCVTPS2PD X1, Y1
	VSUBPD Y1, Y8, Y1
	VMULPD Y1, Y12, Y1
	roundHalfUp(Y1)
	VCVTTPD2DQY Y1, X1          // q = round(v * (1.0 - fs * f))
	VCVTPS2PD X14, Y2
	VSUBPD Y2, Y8, Y2
	VMULPD Y2, Y5, Y2
	VSUBPD Y2, Y8, Y2
	VMULPD Y2, Y12, Y2
	roundHalfUp(Y2)
	VCVTTPD2DQY Y2, X2          // t = round(v * (1.0 - fs * (1.0 - f)))
	VPCMPEQD hueI<>+96(SB), X13, X4
	VPANDN X13, X4, X13         // i % 6

	// red: v (i = 0, 5), q (1), p (2, 3), t (4)
	VMOVDQA X7, X5
	VPCMPEQD hueI<>+16(SB), X13, X4
	VPBLENDVB X4, X1, X5, X5
	VPCMPEQD hueI<>+64(SB), X13, X4
	VPBLENDVB X4, X2, X5, X5
	VPCMPEQD hueI<>+0(SB), X13, X4
	VPBLENDVB X4, X3, X5, X5
	VPCMPEQD hueI<>+80(SB), X13, X4
	VPBLENDVB X4, X3, X5, X5
	VPBLENDVB X0, X3, X5, X5
	// green: t (0), v (1, 2), q (3), p (4, 5)
	VMOVDQA X7, X6
	VPCMPEQD hueI<>+0(SB), X13, X4
	VPBLENDVB X4, X2, X6, X6
	VPCMPEQD hueI<>+16(SB), X13, X4
	VPBLENDVB X4, X3, X6, X6
	VPCMPEQD hueI<>+32(SB), X13, X4
	VPBLENDVB X4, X3, X6, X6
	VPCMPEQD hueI<>+48(SB), X13, X4
	VPBLENDVB X4, X1, X6, X6
	VPBLENDVB X0, X3, X6, X6
	// blue: p (0, 1), t (2), v (3, 4), q (5)
	VMOVDQA X7, X12
	VPCMPEQD hueI<>+32(SB), X13, X4
	VPBLENDVB X4, X2, X12, X12
	VPCMPEQD hueI<>+48(SB), X13, X4
	VPBLENDVB X4, X3, X12, X12
	VPCMPEQD hueI<>+64(SB), X13, X4
	VPBLENDVB X4, X3, X12, X12
	VPCMPEQD hueI<>+80(SB), X13, X4
	VPBLENDVB X4, X1, X12, X12
	VPBLENDVB X0, X3, X12, X12

	VPACKSSDW X5, X5, X5
	VPACKUSWB X5, X5, X5
	VPSHUFB hueOutR<>(SB), X5, X5
	VPACKSSDW X6, X6, X6
	VPACKUSWB X6, X6, X6
	VPSHUFB hueOutG<>(SB), X6, X6
	VPACKSSDW X12, X12, X12
	VPACKUSWB X12, X12, X12
	VPSHUFB hueOutB<>(SB), X12, X12
	VPOR X6, X5, X5
	VPOR X12, X5, X5
	VMOVQ X5, (DI)
	VPEXTRD $2, X5, 8(DI)
	ADDQ $12, DI
	SUBQ $4, CX
	JMP hue4

hue_done:
	VZEROUPPER
	RET

// func blendLevelAVX2(pix *uint8, n int, level, a float32)
// pix[i] = clip(trunc(level + a*(v-level))), v = pix[i], in float32, for n (a multiple of 8)
// values: Pillow's blend with a one-level image, as blendValue computes it.
TEXT ·blendLevelAVX2(SB), NOSPLIT, $0-24
	MOVQ pix+0(FP), DI
	MOVQ n+8(FP), CX
	VBROADCASTSS level+16(FP), Y1
	VBROADCASTSS a+20(FP), Y6
	VXORPS Y5, Y5, Y5           // 0
	MOVL $0x437f0000, AX        // 255.0
	VMOVD AX, X4
	VBROADCASTSS X4, Y4

level16:
	CMPQ CX, $16
	JLT level8
	VPMOVZXBD (DI), Y0
	VPMOVZXBD 8(DI), Y2
	VCVTDQ2PS Y0, Y0
	VCVTDQ2PS Y2, Y2
	VSUBPS Y1, Y0, Y0
	VSUBPS Y1, Y2, Y2
	VMULPS Y6, Y0, Y0
	VMULPS Y6, Y2, Y2
	VADDPS Y0, Y1, Y0
	VADDPS Y2, Y1, Y2
	VMAXPS Y5, Y0, Y0
	VMAXPS Y5, Y2, Y2
	VMINPS Y4, Y0, Y0
	VMINPS Y4, Y2, Y2
	VCVTTPS2DQ Y0, Y0
	VCVTTPS2DQ Y2, Y2
	VPACKSSDW Y2, Y0, Y0        // per 128-bit lane: values 0-3, 8-11 | 4-7, 12-15
	VPERMQ $0xD8, Y0, Y0
	VEXTRACTI128 $1, Y0, X2
	VPACKUSWB X2, X0, X0
	VMOVDQU X0, (DI)
	ADDQ $16, DI
	SUBQ $16, CX
	JMP level16

level8:
	CMPQ CX, $8
	JLT level_done
	VPMOVZXBD (DI), Y0
	VCVTDQ2PS Y0, Y0
	VSUBPS Y1, Y0, Y0
	VMULPS Y6, Y0, Y0
	VADDPS Y0, Y1, Y0
	VMAXPS Y5, Y0, Y0
	VMINPS Y4, Y0, Y0
	VCVTTPS2DQ Y0, Y0
	VEXTRACTI128 $1, Y0, X2
	VPACKSSDW X2, X0, X0
	VPACKUSWB X0, X0, X0
	MOVQ X0, (DI)
	ADDQ $8, DI
	SUBQ $8, CX
	JMP level8

level_done:
	VZEROUPPER
	RET
