// Quantized weights: the formats' definitions (quantize, dequantize) and the products that read
// them. docs/model-format.md gives the formats byte for byte; scripts/reference/quantization_reference.py
// is the same definition in numpy. The scalar functions are the definition; the SIMD ones are
// tested against them (dequantization bit for bit, products within a stated float bound).
#include "kosmos_kernels.h"
#include "kk_half.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define KQ_X86 1
#else
#define KQ_X86 0
#endif


static int valid_layout(long k, long group) {
    return group >= KK_Q_BLOCK && group % KK_Q_BLOCK == 0 && k > 0 && k % group == 0;
}

// MARK: Quantization (the definition; scalar on every machine)

int kk_q8_quantize(long rows, long k, const float *w, long group, int8_t *q, uint16_t *scales) {
    if (!valid_layout(k, group)) return KK_Q_BAD_LAYOUT;
    const long groups = k / group;
    for (long r = 0; r < rows; r++) {
        for (long g = 0; g < groups; g++) {
            const float *x = w + r * k + g * group;
            int8_t *out = q + r * k + g * group;
            float amax = 0;
            for (long i = 0; i < group; i++) {
                if (!isfinite(x[i])) return KK_Q_NOT_FINITE;
                float a = fabsf(x[i]);
                if (a > amax) amax = a;
            }
            uint16_t d16 = f16_from_f32_scalar(amax / 127.0f);
            float d = f32_from_f16_scalar(d16);
            if (!isfinite(d)) return KK_Q_SCALE_OVERFLOW;
            scales[r * groups + g] = d16;
            for (long i = 0; i < group; i++) {
                float v = d == 0 ? 0 : nearbyintf(x[i] / d);
                if (v > 127) v = 127;
                if (v < -127) v = -127;
                out[i] = (int8_t)v;
            }
        }
    }
    return 0;
}

int kk_q4_quantize(long rows, long k, const float *w, long group, uint8_t *q, uint16_t *scales, uint16_t *mins) {
    if (!valid_layout(k, group)) return KK_Q_BAD_LAYOUT;
    const long groups = k / group;
    uint8_t levels[KK_Q_BLOCK];
    for (long r = 0; r < rows; r++) {
        for (long g = 0; g < groups; g++) {
            const float *x = w + r * k + g * group;
            float lo = x[0], hi = x[0];
            for (long i = 0; i < group; i++) {
                if (!isfinite(x[i])) return KK_Q_NOT_FINITE;
                if (x[i] < lo) lo = x[i];
                if (x[i] > hi) hi = x[i];
            }
            uint16_t d16 = f16_from_f32_scalar((hi - lo) / 15.0f), m16 = f16_from_f32_scalar(lo);
            float d = f32_from_f16_scalar(d16), m = f32_from_f16_scalar(m16);
            if (!isfinite(d) || !isfinite(m)) return KK_Q_SCALE_OVERFLOW;
            scales[r * groups + g] = d16;
            mins[r * groups + g] = m16;
            for (long b = 0; b < group; b += KK_Q_BLOCK) {
                for (int i = 0; i < KK_Q_BLOCK; i++) {
                    float v = d == 0 ? 0 : nearbyintf((x[b + i] - m) / d);
                    if (v > 15) v = 15;
                    if (v < 0) v = 0;
                    levels[i] = (uint8_t)v;
                }
                // Byte i of a 32-column block: column i in the low nibble, column i + 16 in the high one.
                uint8_t *out = q + (r * k + g * group + b) / 2;
                for (int i = 0; i < KK_Q_BLOCK / 2; i++) out[i] = (uint8_t)(levels[i] | (levels[i + 16] << 4));
            }
        }
    }
    return 0;
}

// MARK: Dequantization

// One row's weights as float32 (the scalar definition: q·d, and n·d + m fused, one rounding each).
static void q8_row_scalar(long k, const int8_t *q, const uint16_t *scales, long group, float *out) {
    for (long p = 0; p < k; p++) out[p] = (float)q[p] * f32_from_f16_scalar(scales[p / group]);
}

static void q4_row_scalar(long k, const uint8_t *q, const uint16_t *scales, const uint16_t *mins, long group, float *out) {
    for (long p = 0; p < k; p++) {
        long block = p / KK_Q_BLOCK, i = p % KK_Q_BLOCK;
        uint8_t byte = q[block * (KK_Q_BLOCK / 2) + (i & 15)];
        int level = i < 16 ? (byte & 15) : (byte >> 4);
        out[p] = fmaf((float)level, f32_from_f16_scalar(scales[p / group]), f32_from_f16_scalar(mins[p / group]));
    }
}

#if KQ_X86
// 16 levels of a 32-column q4 block: the low nibbles (columns 0-15) or the high ones (16-31).
__attribute__((target("avx512f,avx512bw,avx512vl,f16c")))
static inline __m512 q4_levels16(__m128i bytes, int high) {
    __m512i wide = _mm512_cvtepu8_epi32(bytes);
    if (high) wide = _mm512_srli_epi32(wide, 4);
    return _mm512_cvtepi32_ps(_mm512_and_si512(wide, _mm512_set1_epi32(15)));
}

__attribute__((target("avx512f,avx512bw,avx512vl,f16c")))
static void q8_row_avx512(long k, const int8_t *q, const uint16_t *scales, long group, float *out) {
    for (long p = 0; p < k; p += 16) {
        __m512 d = _mm512_set1_ps(_cvtsh_ss(scales[p / group]));
        __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q + p))));
        _mm512_storeu_ps(out + p, _mm512_mul_ps(v, d));
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,f16c")))
static void q4_row_avx512(long k, const uint8_t *q, const uint16_t *scales, const uint16_t *mins, long group, float *out) {
    for (long p = 0; p < k; p += KK_Q_BLOCK) {
        __m512 d = _mm512_set1_ps(_cvtsh_ss(scales[p / group])), m = _mm512_set1_ps(_cvtsh_ss(mins[p / group]));
        __m128i bytes = _mm_loadu_si128((const __m128i *)(q + p / 2));
        _mm512_storeu_ps(out + p, _mm512_fmadd_ps(q4_levels16(bytes, 0), d, m));
        _mm512_storeu_ps(out + p + 16, _mm512_fmadd_ps(q4_levels16(bytes, 1), d, m));
    }
}
#endif

#if KQ_X86
// Straight to bfloat16 where the CPU converts natively (vcvtne2ps2bf16 rounds to nearest even, as
// kk_bf16_from_f32 does; dequantized values are never NaN).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,f16c")))
static void q_row_bf16_native(int bits, long k, const void *q, const uint16_t *scales, const uint16_t *mins, long group,
                              uint16_t *out) {
    for (long p = 0; p < k; p += KK_Q_BLOCK) {
        __m512 d = _mm512_set1_ps(_cvtsh_ss(scales[p / group])), lo, hi;
        if (bits == 8) {
            __m256i bytes = _mm256_loadu_si256((const __m256i *)((const int8_t *)q + p));
            lo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(bytes))), d);
            hi = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(bytes, 1))), d);
        } else {
            __m512 m = _mm512_set1_ps(_cvtsh_ss(mins[p / group]));
            __m128i bytes = _mm_loadu_si128((const __m128i *)((const uint8_t *)q + p / 2));
            lo = _mm512_fmadd_ps(q4_levels16(bytes, 0), d, m);
            hi = _mm512_fmadd_ps(q4_levels16(bytes, 1), d, m);
        }
        _mm512_storeu_si512((void *)(out + p), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
}
#endif

static void dequantize_row(int bits, long k, const void *q, const uint16_t *scales, const uint16_t *mins, long group,
                           float *out) {
#if KQ_X86
    if (kk_active_isa() >= KK_ISA_AVX512) {
        if (bits == 8) q8_row_avx512(k, q, scales, group, out);
        else q4_row_avx512(k, q, scales, mins, group, out);
        return;
    }
#endif
    if (bits == 8) q8_row_scalar(k, q, scales, group, out);
    else q4_row_scalar(k, q, scales, mins, group, out);
}

/// Rows j0 ..< j1 of the weight in float32 or bfloat16 (`dst` holds those rows only, k apart).
static void dequantize_rows(int bits, long j0, long j1, long k, const void *q, const uint16_t *scales,
                            const uint16_t *mins, long group, float *f32, uint16_t *bf16) {
    const long groups = k / group, row_bytes = bits == 8 ? k : k / 2;
#if KQ_X86
    if (bf16 && kk_active_isa() >= KK_ISA_AVX512_BF16) {
        for (long j = j0; j < j1; j++)
            q_row_bf16_native(bits, k, (const uint8_t *)q + j * row_bytes, scales + j * groups, mins ? mins + j * groups : NULL,
                              group, bf16 + (j - j0) * k);
        return;
    }
#endif
    float *scratch = bf16 ? malloc((size_t)k * sizeof(float)) : NULL;
    for (long j = j0; j < j1; j++) {
        float *row = bf16 ? scratch : f32 + (j - j0) * k;
        dequantize_row(bits, k, (const uint8_t *)q + j * row_bytes, scales + j * groups, mins ? mins + j * groups : NULL,
                       group, row);
        if (bf16) kk_bf16_from_f32(row, bf16 + (j - j0) * k, (size_t)k);
    }
    free(scratch);
}

void kk_q8_dequantize(long j0, long j1, long k, const int8_t *q, const uint16_t *scales, long group, float *dst) {
    dequantize_rows(8, j0, j1, k, q, scales, NULL, group, dst, NULL);
}

void kk_q4_dequantize(long j0, long j1, long k, const uint8_t *q, const uint16_t *scales, const uint16_t *mins,
                      long group, float *dst) {
    dequantize_rows(4, j0, j1, k, q, scales, mins, group, dst, NULL);
}

void kk_q8_dequantize_bf16(long j0, long j1, long k, const int8_t *q, const uint16_t *scales, long group, uint16_t *dst) {
    dequantize_rows(8, j0, j1, k, q, scales, NULL, group, NULL, dst);
}

void kk_q4_dequantize_bf16(long j0, long j1, long k, const uint8_t *q, const uint16_t *scales, const uint16_t *mins,
                           long group, uint16_t *dst) {
    dequantize_rows(4, j0, j1, k, q, scales, mins, group, NULL, dst);
}

// MARK: Few rows times a quantized weight

// Decoding reads each weight once per token, so these products are built to run at the memory's
// speed: the activations are quantized too (per 32-column block: dx = max|x| / 127, qx =
// rint(x / dx), as llama.cpp's q8_0 activations), and each block's products are exact integer
// dot products. The definition, which every ISA level computes bit for bit:
//   for each block b (32 columns) and lane l < 8 (columns 4l .. 4l+3 of the block):
//     t = sum of the 4 products qx·q (q the int8 level, or the 4-bit level n for q4), exact;
//     acc[h] = fmaf((float)t, d·dx_b, acc[h])   (d the weight's float16 scale of b's group,
//                                                 d·dx_b one float32 product)
//   with the lane h:  q8: h = 8·(b mod 2) + l                         (16 lanes)
//                     q4: h = 16·(l div 4) + 4·(b mod 4) + (l mod 4)  (32 lanes)
//   q8: result = reduce16(acc). q4: result = reduce16(w) + reduce16(min lanes), w[h] = acc[h] +
//   acc[h + 16], where the minimums' lanes hold the sum over groups g of m_g · T_g, T_g = sum
//   over b in g of dx_b·(float)S_b (fmaf in block order, S_b the exact sum of qx over the
//   block), accumulated in 16 lanes (g mod 16). Each reduction is the fixed pairwise tree below.
// The lanes are chosen for the vectors: q8's pair of blocks is one 512-bit vector; q4's 64 bytes
// of four blocks are one 512-bit load whose low nibbles (columns 0-15 of each block) and high
// nibbles (columns 16-31) make two vectors; and every output has two or more independent chains.

/// Activations of `m` rows quantized per 32-column block (shared by every ISA level and thread
/// split, so the same everywhere).
typedef struct {
    int8_t *q;      // m × k
    float *dx;      // m × k/32
    float *t;       // m × groups (q4 only): sum over the group's blocks of dx·S
    int *s;         // m × k/32 (q4 only): the exact sum of each block's levels
    uint8_t *p;     // q4 only, m rows of p_stride bytes: the levels of each four blocks as
                    // their columns 0-15 (block by block), then their columns 16-31, zero-padded
    long p_stride;  // 128 bytes per four blocks
    uint8_t *xu;    // q8 of KQ_TILE_ROWS rows or more only: qx + 128 as unsigned bytes, m × k
    float *dxp;     // the same only: dx of each pair of blocks spread to 16 lanes, m × pairs × 16
} quantized_rows;

// From this many activation rows the products go through 4 × 4 tiles (rows × weight rows).
#define KQ_TILE_ROWS 4

/// One block of activations quantized (the definition): dx = max |x| / 127, levels round(x / dx)
/// (to nearest even) clamped to ±127; returns the sum of the levels.
static int quantize_block_scalar(const float *xb, int8_t *qb, float *dx_out) {
    float amax = 0;
    for (int u = 0; u < KK_Q_BLOCK; u++) {
        float v = fabsf(xb[u]);
        amax = v > amax ? v : amax;
    }
    const float dx = amax / 127.0f;
    int sum = 0;
    for (int u = 0; u < KK_Q_BLOCK; u++) {
        float v = dx == 0 ? 0 : nearbyintf(xb[u] / dx);
        v = v > 127 ? 127 : (v < -127 ? -127 : v);
        qb[u] = (int8_t)v;
        sum += qb[u];
    }
    *dx_out = dx;
    return sum;
}

#if KQ_X86
/// The same block in two vectors, bit for bit (the same maximum, IEEE division, rounding to
/// nearest even and clamp; only NaN inputs may differ): decoding quantizes each product's
/// activations on one thread before the product starts, and the scalar loop's division and
/// nearbyintf call per element cost ~10 µs per product at k = 2048.
__attribute__((target("avx512f,avx512bw,avx512vl")))
static int quantize_block_avx512(const float *xb, int8_t *qb, float *dx_out) {
    const __m512 lo = _mm512_loadu_ps(xb), hi = _mm512_loadu_ps(xb + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
    const float dx = amax / 127.0f;
    *dx_out = dx;
    if (dx == 0) {
        memset(qb, 0, KK_Q_BLOCK);
        return 0;
    }
    const __m512 d = _mm512_set1_ps(dx), top = _mm512_set1_ps(127), bottom = _mm512_set1_ps(-127);
#define KQ_NEAREST (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
    const __m512 rlo = _mm512_min_ps(_mm512_max_ps(_mm512_roundscale_ps(_mm512_div_ps(lo, d), KQ_NEAREST), bottom), top);
    const __m512 rhi = _mm512_min_ps(_mm512_max_ps(_mm512_roundscale_ps(_mm512_div_ps(hi, d), KQ_NEAREST), bottom), top);
    const __m512i ilo = _mm512_cvtps_epi32(rlo), ihi = _mm512_cvtps_epi32(rhi);
    _mm_storeu_si128((__m128i *)qb, _mm512_cvtepi32_epi8(ilo));
    _mm_storeu_si128((__m128i *)(qb + 16), _mm512_cvtepi32_epi8(ihi));
    return _mm512_reduce_add_epi32(_mm512_add_epi32(ilo, ihi));
#undef KQ_NEAREST
}
#endif

static int quantize_rows(int m, long k, const float *a, long lda, long group, int with_sums, quantized_rows *out) {
    const long blocks = k / KK_Q_BLOCK, groups = k / group;
    out->q = malloc((size_t)m * k);
    out->dx = malloc((size_t)m * blocks * sizeof(float));
    out->t = with_sums ? malloc((size_t)m * groups * sizeof(float)) : NULL;
    out->s = with_sums ? malloc((size_t)m * blocks * sizeof(int)) : NULL;
    out->p_stride = (blocks + 3) / 4 * 128;
    out->p = with_sums ? calloc((size_t)m, (size_t)out->p_stride) : NULL;
    const long pairs = (blocks + 1) / 2;
    const int tiles = m >= KQ_TILE_ROWS && !with_sums;  // q8's tiles (q4's activations leave them out)
    out->xu = tiles ? malloc((size_t)m * k) : NULL;
    out->dxp = tiles ? calloc((size_t)m * pairs * 16, sizeof(float)) : NULL;
    if (!out->q || !out->dx || (with_sums && (!out->t || !out->s || !out->p))) return -1;
    if (tiles && (!out->xu || !out->dxp)) return -1;
#if KQ_X86
    const int vector = kk_active_isa() >= KK_ISA_AVX512;
#endif
    for (int i = 0; i < m; i++) {
        const float *x = a + (long)i * lda;
        for (long b = 0; b < blocks; b++) {
            const float *xb = x + b * KK_Q_BLOCK;
            int8_t *qb = out->q + (long)i * k + b * KK_Q_BLOCK;
            float dx;
#if KQ_X86
            const int sum = vector ? quantize_block_avx512(xb, qb, &dx) : quantize_block_scalar(xb, qb, &dx);
#else
            const int sum = quantize_block_scalar(xb, qb, &dx);
#endif
            out->dx[(long)i * blocks + b] = dx;
            if (out->xu) {
                for (int u = 0; u < KK_Q_BLOCK; u++) out->xu[(long)i * k + b * KK_Q_BLOCK + u] = (uint8_t)(qb[u] + 128);
                float *spread = out->dxp + ((long)i * pairs + b / 2) * 16 + (b % 2) * 8;
                for (int l = 0; l < 8; l++) spread[l] = dx;
            }
            if (with_sums) {
                out->s[(long)i * blocks + b] = sum;
                uint8_t *four = out->p + (long)i * out->p_stride + (b / 4) * 128 + (b % 4) * 16;
                memcpy(four, qb, 16);
                memcpy(four + 64, qb + 16, 16);
            }
        }
        if (with_sums) {
            const long per = group / KK_Q_BLOCK;
            for (long g = 0; g < groups; g++) {
                float t = 0;
                for (long b = g * per; b < (g + 1) * per; b++)
                    t = fmaf(out->dx[(long)i * blocks + b], (float)out->s[(long)i * blocks + b], t);
                out->t[(long)i * groups + g] = t;
            }
        }
    }
    return 0;
}

static void free_rows(quantized_rows *r) {
    free(r->q);
    free(r->dx);
    free(r->t);
    free(r->s);
    free(r->p);
    free(r->xu);
    free(r->dxp);
}

/// The fixed reduction of 8 lanes (the AVX order: halves, then pairs, then the last two).
static inline float reduce8_tree(const float *v) {
    float a0 = v[0] + v[4], a1 = v[1] + v[5], a2 = v[2] + v[6], a3 = v[3] + v[7];
    float b0 = a0 + a2, b1 = a1 + a3;
    return b0 + b1;
}

/// 16 lanes: v[l] + v[l + 8] first, then the 8-lane tree.
static inline float reduce16_tree(const float *v) {
    float h[8];
    for (int l = 0; l < 8; l++) h[l] = v[l] + v[l + 8];
    return reduce8_tree(h);
}

/// The q4 minimums' term of one output: sum over groups of m_g·T_g in 16 lanes (scalar form).
static float minimum_term_scalar(long groups, const uint16_t *mins, const float *t) {
    float lanes[16] = {0};
    for (long g = 0; g < groups; g++) lanes[g % 16] = fmaf(f32_from_f16_scalar(mins[g]), t[g], lanes[g % 16]);
    return reduce16_tree(lanes);
}

/// The weight levels of one 32-column block as bytes (q8: int8; q4: the levels 0-15).
static inline void block_levels(int bits, const uint8_t *row, long b, int8_t *levels) {
    if (bits == 8) {
        memcpy(levels, row + b * KK_Q_BLOCK, KK_Q_BLOCK);
        return;
    }
    const uint8_t *bytes = row + b * (KK_Q_BLOCK / 2);
    for (int u = 0; u < 16; u++) {
        levels[u] = (int8_t)(bytes[u] & 15);
        levels[u + 16] = (int8_t)(bytes[u] >> 4);
    }
}

static void q_rows_scalar(int bits, int m, long j0, long j1, long k, const quantized_rows *x, const void *q,
                          const uint16_t *scales, const uint16_t *mins, long group, float *c, long ldc) {
    const long groups = k / group, blocks = k / KK_Q_BLOCK, per = group / KK_Q_BLOCK;
    const long row_bytes = bits == 8 ? k : k / 2;
    int8_t levels[KK_Q_BLOCK];
    for (long j = j0; j < j1; j++) {
        const uint8_t *row = (const uint8_t *)q + j * row_bytes;
        for (int i = 0; i < m; i++) {
            const int8_t *qx = x->q + (long)i * k;
            float acc[32] = {0};
            for (long b = 0; b < blocks; b++) {
                block_levels(bits, row, b, levels);
                const float s = f32_from_f16_scalar(scales[j * groups + b / per]) * x->dx[(long)i * blocks + b];
                for (int l = 0; l < 8; l++) {
                    int t = 0;
                    for (int u = 0; u < 4; u++) t += (int)qx[b * KK_Q_BLOCK + 4 * l + u] * (int)levels[4 * l + u];
                    const int h = bits == 8 ? 8 * (int)(b & 1) + l : 16 * (l / 4) + 4 * (int)(b & 3) + l % 4;
                    acc[h] = fmaf((float)t, s, acc[h]);
                }
            }
            float sum;
            if (bits == 8) {
                sum = reduce16_tree(acc);
            } else {
                float w[16];
                for (int h = 0; h < 16; h++) w[h] = acc[h] + acc[h + 16];
                sum = reduce16_tree(w);
            }
            if (bits == 4) sum += minimum_term_scalar(groups, mins + j * groups, x->t + (long)i * groups);
            c[(long)i * ldc + j] = sum;
        }
    }
}

#if KQ_X86
// The same definitions with integer dot products: AVX-512 VNNI (vpdpbusd on 512 bits) or AVX2
// (vpmaddubsw + vpmaddwd on 256 bits, exact here: |qx|, |q| ≤ 127, so no pair saturates).
// vpdpbusd and vpmaddubsw multiply unsigned by signed bytes: q8 takes |q| and qx with q's sign;
// q4's levels are unsigned already. q8: a pair of blocks per 512-bit vector (lanes 0-7 block b,
// 8-15 block b + 1), or even and odd blocks in two 256-bit accumulators. q4: four blocks' 64
// bytes per 512-bit load, their low nibbles (columns 0-15) in one vector and high nibbles
// (columns 16-31) in another, the activations stored in the same order (quantized_rows.p).

#define KQ_ROWS 16
#ifndef KQ_PREFETCH_BYTES
#define KQ_PREFETCH_BYTES 4096  // decoding: this far ahead of the hardware prefetcher
#endif
#define KQ_AVX2 __attribute__((target("avx2,fma,f16c")))
#define KQ512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c"), always_inline))

// The minimums' term in two 8-lane vectors (lanes g mod 16), the same fmaf per lane as the
// scalar form, so the same bits.
KQ_AVX2 static inline float minimum_term_avx2(long groups, const uint16_t *mins, const float *t) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    long g = 0;
    for (; g + 16 <= groups; g += 16) {
        lo = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(mins + g))), _mm256_loadu_ps(t + g), lo);
        hi = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(mins + g + 8))), _mm256_loadu_ps(t + g + 8), hi);
    }
    float lanes[16];
    _mm256_storeu_ps(lanes, lo);
    _mm256_storeu_ps(lanes + 8, hi);
    for (; g < groups; g++) lanes[g % 16] = fmaf(_cvtsh_ss(mins[g]), t[g], lanes[g % 16]);
    return reduce16_tree(lanes);
}

KQ_AVX2 static inline float kq_reduce_avx2(__m256 lanes8) {
    float lanes[8];
    _mm256_storeu_ps(lanes, lanes8);
    return reduce8_tree(lanes);
}

// 8 exact integer dot products of unsigned bytes u and signed bytes s.
KQ_AVX2 static inline __m256i dot_avx2(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// q8 block products, scaled and accumulated: acc += dot(|w|, x·sign(w)) · scale.
KQ_AVX2 static inline __m256 q8_step_avx2(const int8_t *w, const int8_t *xq, float scale, __m256 acc) {
    const __m256i wv = _mm256_loadu_si256((const __m256i *)w), xv = _mm256_loadu_si256((const __m256i *)xq);
    const __m256i t = dot_avx2(_mm256_abs_epi8(wv), _mm256_sign_epi8(xv, wv));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_set1_ps(scale), acc);
}

// q8, one activation row (decoding) times weight row j: accumulators in registers.
KQ_AVX2 static inline void q8_one_avx2(long j, long k, const quantized_rows *x, const int8_t *q,
                                       const uint16_t *scales, long group, float *c) {
    const long groups = k / group, blocks = k / KK_Q_BLOCK, per = group / KK_Q_BLOCK;
    const int8_t *row = q + j * k;
    const uint16_t *d = scales + j * groups;
    __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
    long b = 0;
    for (; b + 2 <= blocks; b += 2) {
        even = q8_step_avx2(row + b * KK_Q_BLOCK, x->q + b * KK_Q_BLOCK, _cvtsh_ss(d[b / per]) * x->dx[b], even);
        odd = q8_step_avx2(row + (b + 1) * KK_Q_BLOCK, x->q + (b + 1) * KK_Q_BLOCK, _cvtsh_ss(d[(b + 1) / per]) * x->dx[b + 1], odd);
    }
    if (b < blocks) even = q8_step_avx2(row + b * KK_Q_BLOCK, x->q + b * KK_Q_BLOCK, _cvtsh_ss(d[b / per]) * x->dx[b], even);
    c[j] = kq_reduce_avx2(_mm256_add_ps(even, odd));
}

KQ_AVX2 static void q8_rows_avx2(int m, long j0, long j1, long k, const quantized_rows *x, const void *q,
                                 const uint16_t *scales, long group, float *c, long ldc) {
    const long groups = k / group, blocks = k / KK_Q_BLOCK, per = group / KK_Q_BLOCK;
    if (m == 1) {
        for (long j = j0; j < j1; j++) q8_one_avx2(j, k, x, q, scales, group, c);
        return;
    }
    for (long j = j0; j < j1; j++) {
        const int8_t *row = (const int8_t *)q + j * k;
        for (int i0 = 0; i0 < m; i0 += KQ_ROWS) {
            const int rows = m - i0 < KQ_ROWS ? m - i0 : KQ_ROWS;
            __m256 acc[2][KQ_ROWS];
            for (int r = 0; r < rows; r++) acc[0][r] = acc[1][r] = _mm256_setzero_ps();
            for (long b = 0; b < blocks; b++) {
                const float d = _cvtsh_ss(scales[j * groups + b / per]);
                for (int r = 0; r < rows; r++) {
                    const long i = i0 + r;
                    acc[b & 1][r] = q8_step_avx2(row + b * KK_Q_BLOCK, x->q + i * k + b * KK_Q_BLOCK, d * x->dx[i * blocks + b], acc[b & 1][r]);
                }
            }
            for (int r = 0; r < rows; r++) c[(i0 + r) * ldc + j] = kq_reduce_avx2(_mm256_add_ps(acc[0][r], acc[1][r]));
        }
    }
}

// q4, one activation row (decoding) times weight row j: four accumulators in registers, as
// q4_rows_avx2 below lays them out.
// q4, blocks b and b + 1 of a weight row (b alone when !two, lanes 0-3 of each product) times the
// activations at xg (the low nibbles' columns; the high ones 64 bytes on), scaled by s, into the
// accumulators of b's half: the one step every AVX2 q4 loop below takes.
__attribute__((target("avx2,fma,f16c"), always_inline))
static inline void q4_pair_avx2(const uint8_t *row, long b, int two, const uint8_t *xg, __m256 s, __m256 *lo_acc,
                                __m256 *hi_acc) {
    const __m256i low4 = _mm256_set1_epi8(15);
    const __m256i bytes = two ? _mm256_loadu_si256((const __m256i *)(row + b * 16))
                              : _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(row + b * 16)));
    const __m256i lo = _mm256_and_si256(bytes, low4), hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4);
    const __m256 nlo = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_avx2(lo, _mm256_loadu_si256((const __m256i *)xg))), s, *lo_acc);
    const __m256 nhi = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_avx2(hi, _mm256_loadu_si256((const __m256i *)(xg + 64)))), s, *hi_acc);
    *lo_acc = two ? nlo : _mm256_blend_ps(*lo_acc, nlo, 0x0F);
    *hi_acc = two ? nhi : _mm256_blend_ps(*hi_acc, nhi, 0x0F);
}

KQ_AVX2 static inline void q4_one_avx2(long j, long k, const quantized_rows *x, const uint8_t *q,
                                       const uint16_t *scales, const uint16_t *mins, long group, float *c) {
    const long groups = k / group, blocks = k / KK_Q_BLOCK, per = group / KK_Q_BLOCK;
    const uint8_t *row = q + j * (k / 2);
    const uint16_t *d = scales + j * groups;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    long b = 0;
    if (per == 1) {
        // Eight blocks' d·dx as one vector (each lane one float32 product, as below), spread to pairs.
        for (; b + 8 <= blocks; b += 8) {
            const __m256 sv = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(d + b))), _mm256_loadu_ps(x->dx + b));
            for (int pair = 0; pair < 4; pair++) {
                const long e = b + 2 * pair;
                const int half = pair & 1;
                const __m256 s = _mm256_permutevar8x32_ps(sv, _mm256_setr_epi32(2 * pair, 2 * pair, 2 * pair, 2 * pair,
                                                                                2 * pair + 1, 2 * pair + 1, 2 * pair + 1, 2 * pair + 1));
                q4_pair_avx2(row, e, 1, x->p + (e / 4) * 128 + 32 * half, s, &acc[half], &acc[2 + half]);
            }
        }
    }
    for (; b + 4 <= blocks; b += 4) {
        const uint8_t *xg = x->p + (b / 4) * 128;
        for (int half = 0; half < 2; half++) {
            const long e = b + 2 * half;
            const __m256 s = _mm256_setr_m128(_mm_set1_ps(_cvtsh_ss(d[e / per]) * x->dx[e]),
                                              _mm_set1_ps(_cvtsh_ss(d[(e + 1) / per]) * x->dx[e + 1]));
            q4_pair_avx2(row, e, 1, xg + 32 * half, s, &acc[half], &acc[2 + half]);
        }
    }
    for (; b < blocks; b += 2) {  // the last one to three blocks, as q4_rows_avx2 does them
        const int two = b + 1 < blocks, half = (b & 3) != 0;
        const __m256 s = _mm256_setr_m128(_mm_set1_ps(_cvtsh_ss(d[b / per]) * x->dx[b]),
                                          _mm_set1_ps(two ? _cvtsh_ss(d[(b + 1) / per]) * x->dx[b + 1] : 0));
        q4_pair_avx2(row, b, two, x->p + (b / 4) * 128 + (b & 3) * 16, s, &acc[half], &acc[2 + half]);
    }
    const __m256 w = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    c[j] = kq_reduce_avx2(w) + minimum_term_avx2(groups, mins + j * groups, x->t);
}

// q4 with AVX2: blocks b, b + 1 (b even) as one 32-byte load; lanes 0-3 of a product block b's
// l < 4 (or l ≥ 4 for the high nibbles), lanes 4-7 block b + 1's, which is the definition's
// lanes 4·(b mod 4) + (l mod 4) + 16·(l div 4) taken 8 at a time: acc[0] (b mod 4 < 2, low),
// acc[1] (b mod 4 ≥ 2, low), acc[2], acc[3] (high).
KQ_AVX2 static void q4_rows_avx2(int m, long j0, long j1, long k, const quantized_rows *x, const void *q,
                                 const uint16_t *scales, const uint16_t *mins, long group, float *c, long ldc) {
    const long groups = k / group, blocks = k / KK_Q_BLOCK, per = group / KK_Q_BLOCK;
    const long row_bytes = k / 2, stride = x->p_stride;
    if (m == 1) {
        for (long j = j0; j < j1; j++) q4_one_avx2(j, k, x, q, scales, mins, group, c);
        return;
    }
    for (long j = j0; j < j1; j++) {
        const uint8_t *row = (const uint8_t *)q + j * row_bytes;
        for (int i0 = 0; i0 < m; i0 += KQ_ROWS) {
            const int rows = m - i0 < KQ_ROWS ? m - i0 : KQ_ROWS;
            __m256 acc[KQ_ROWS][4];
            for (int r = 0; r < rows; r++) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = _mm256_setzero_ps();
            for (long b = 0; b < blocks; b += 2) {
                const int two = b + 1 < blocks;
                const float d0 = _cvtsh_ss(scales[j * groups + b / per]);
                const float d1 = two ? _cvtsh_ss(scales[j * groups + (b + 1) / per]) : 0;
                const int half = (b & 3) != 0;
                const uint8_t *xg = x->p + (b / 4) * 128 + (b & 3) * 16;
                for (int r = 0; r < rows; r++) {
                    const long i = i0 + r;
                    const float *dx = x->dx + i * blocks;
                    const __m256 s = _mm256_setr_m128(_mm_set1_ps(d0 * dx[b]), _mm_set1_ps(two ? d1 * dx[b + 1] : 0));
                    q4_pair_avx2(row, b, two, xg + i * stride, s, &acc[r][half], &acc[r][2 + half]);
                }
            }
            for (int r = 0; r < rows; r++) {
                const __m256 w = _mm256_add_ps(_mm256_add_ps(acc[r][0], acc[r][2]), _mm256_add_ps(acc[r][1], acc[r][3]));
                c[(i0 + r) * ldc + j] = kq_reduce_avx2(w) + minimum_term_avx2(groups, mins + j * groups, x->t + (i0 + r) * groups);
            }
        }
    }
}

// MARK: AVX-512 VNNI

KQ512 static inline float kq512_reduce(__m512 acc) {
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1)));
    return reduce8_tree(lanes);
}

// The float32 weight scales d of blocks b .. b + n - 1 (n ≤ 16) of one row, lane l block b + l.
KQ512 static inline __m512 kq512_block_scales(const uint16_t *s, long b, long n, long per, __m512i spread) {
    if (n == 16 && per == 1) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + b)));
    if (n == 16 && 16 % per == 0)
        return _mm512_permutexvar_ps(spread, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((__mmask16)((1u << (16 / per)) - 1), s + b / per)));
    float d[16] = {0};
    for (long l = 0; l < n; l++) d[l] = _cvtsh_ss(s[(b + l) / per]);
    return _mm512_loadu_ps(d);
}

// Lane l takes lane first + l / width of v: a few blocks' values spread to their lanes.
KQ512 static inline __m512 kq512_spread(__m512 v, long first, int width) {
    const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i idx = _mm512_add_epi32(width == 8 ? _mm512_srli_epi32(lanes, 3) : _mm512_srli_epi32(lanes, 2),
                                         _mm512_set1_epi32((int)first));
    return _mm512_permutexvar_ps(idx, v);
}

// q8: 16 exact integer dot products of blocks b, b + 1 (levels w, activations xv).
KQ512 static inline __m512 kq512_dot8(__m512i w, __m512i xv) {
    const __m512i signed_x = _mm512_mask_sub_epi8(xv, _mm512_movepi8_mask(w), _mm512_setzero_si512(), xv);
    return _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), signed_x));
}

KQ512 static inline __m512 kq512_dot4(__m512i w, __m512i xv) {
    return _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), w, xv));
}

// Activation row i (of m), blocks from b on, as 16 lanes; the blocks past n are zero.
KQ512 static inline __m512 kq512_dx(const quantized_rows *x, long blocks, long i, long b, long n) {
    return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), x->dx + i * blocks + b);
}

// q8 times weight row j for m activation rows: every pair of blocks of the weight read once for all.
KQ512 static inline void kq512_q8(int m, long j, long k, const quantized_rows *x, const int8_t *q,
                                  const uint16_t *scales, long group, __m512i spread, float *c, long ldc) {
    const long groups = k / group, blocks = k / KK_Q_BLOCK, per = group / KK_Q_BLOCK;
    const int8_t *row = q + j * k;
    for (int i0 = 0; i0 < m; i0 += KQ_ROWS) {
        const int rows = m - i0 < KQ_ROWS ? m - i0 : KQ_ROWS;
        __m512 acc[KQ_ROWS];
        for (int r = 0; r < rows; r++) acc[r] = _mm512_setzero_ps();
        for (long b = 0; b < blocks; b += 16) {
            const long n = blocks - b < 16 ? blocks - b : 16;
            const __m512 d = kq512_block_scales(scales + j * groups, b, n, per, spread);
            for (long p = 0; 2 * p < n; p++) {
                const int one = 2 * p + 1 == n;  // the last block alone, in lanes 0-7
                const __mmask64 bytes = one ? 0xFFFFFFFFull : ~0ull;
                const __m512i w = _mm512_maskz_loadu_epi8(bytes, row + (b + 2 * p) * KK_Q_BLOCK);
                const __m512 dp = kq512_spread(d, 2 * p, 8);
                for (int r = 0; r < rows; r++) {
                    const long i = i0 + r;
                    const __m512i xv = _mm512_maskz_loadu_epi8(bytes, x->q + i * k + (b + 2 * p) * KK_Q_BLOCK);
                    const __m512 s = _mm512_mul_ps(dp, kq512_spread(kq512_dx(x, blocks, i, b, n), 2 * p, 8));
                    acc[r] = _mm512_mask3_fmadd_ps(kq512_dot8(w, xv), s, acc[r], one ? 0x00FF : 0xFFFF);
                }
            }
        }
        for (int r = 0; r < rows; r++) c[(i0 + r) * ldc + j] = kq512_reduce(acc[r]);
    }
}

// q8, one activation row (decoding) times weight row j: the accumulator stays in a register.
KQ512 static inline void kq512_q8_one(long j, long k, const quantized_rows *x, const int8_t *q,
                                      const uint16_t *scales, long group, __m512i spread, float *c) {
    const long groups = k / group, blocks = k / KK_Q_BLOCK, per = group / KK_Q_BLOCK;
    const int8_t *row = q + j * k;
    __m512 acc = _mm512_setzero_ps();
    long b = 0;
    for (; b + 16 <= blocks; b += 16) {
        const __m512 s = _mm512_mul_ps(kq512_block_scales(scales + j * groups, b, 16, per, spread), _mm512_loadu_ps(x->dx + b));
        for (long p = 0; p < 8; p++) {
            const long o = (b + 2 * p) * KK_Q_BLOCK;
            _mm_prefetch((const char *)(row + o + KQ_PREFETCH_BYTES), _MM_HINT_T0);
            acc = _mm512_fmadd_ps(kq512_dot8(_mm512_loadu_si512(row + o), _mm512_loadu_si512(x->q + o)), kq512_spread(s, 2 * p, 8), acc);
        }
    }
    if (b < blocks) {  // the last blocks, fewer than 16
        const long n = blocks - b;
        const __m512 s = _mm512_mul_ps(kq512_block_scales(scales + j * groups, b, n, per, spread), kq512_dx(x, blocks, 0, b, n));
        for (long p = 0; 2 * p < n; p++) {
            const int one = 2 * p + 1 == n;
            const long o = (b + 2 * p) * KK_Q_BLOCK;
            const __mmask64 bytes = one ? 0xFFFFFFFFull : ~0ull;
            acc = _mm512_mask3_fmadd_ps(kq512_dot8(_mm512_maskz_loadu_epi8(bytes, row + o), _mm512_maskz_loadu_epi8(bytes, x->q + o)),
                                        kq512_spread(s, 2 * p, 8), acc, one ? 0x00FF : 0xFFFF);
        }
    }
    c[j] = kq512_reduce(acc);
}

// q8, a tile of 4 activation rows (i0 ..) times 4 weight rows (j0 ..), prefill: each pair of
// blocks of the weights and activations loaded once for 16 products. vpdpbusd multiplies unsigned
// by signed bytes, so the activations come as qx + 128 (quantized_rows.xu) and each product starts
// from -128·(the sum of the weight's four bytes): the same exact integer as qx·q.
KQ512 static inline void kq512_q8_tile(long i0, long j0, long k, const quantized_rows *x, const int8_t *q,
                                       const uint16_t *scales, long group, __m512i spread, float *c, long ldc) {
    const long groups = k / group, blocks = k / KK_Q_BLOCK, per = group / KK_Q_BLOCK, pairs = (blocks + 1) / 2;
    const __m512i bias = _mm512_set1_epi8((char)0x80), zero = _mm512_setzero_si512();
    // Sixteen accumulators by name (an array of them was kept in memory by the compilers).
#define KQ_ROW4(r) __m512 a##r##0 = _mm512_setzero_ps(), a##r##1 = a##r##0, a##r##2 = a##r##0, a##r##3 = a##r##0
    KQ_ROW4(0); KQ_ROW4(1); KQ_ROW4(2); KQ_ROW4(3);
#undef KQ_ROW4
    const int8_t *w0r = q + j0 * k, *w1r = w0r + k, *w2r = w1r + k, *w3r = w2r + k;
    for (long b = 0; b < blocks; b += 16) {
        const long n = blocks - b < 16 ? blocks - b : 16;
        const __m512 d0 = kq512_block_scales(scales + j0 * groups, b, n, per, spread);
        const __m512 d1 = kq512_block_scales(scales + (j0 + 1) * groups, b, n, per, spread);
        const __m512 d2 = kq512_block_scales(scales + (j0 + 2) * groups, b, n, per, spread);
        const __m512 d3 = kq512_block_scales(scales + (j0 + 3) * groups, b, n, per, spread);
        for (long p = 0; 2 * p < n; p++) {
            const int one = 2 * p + 1 == n;  // the last block alone, in lanes 0-7
            const __mmask64 bytes = one ? 0xFFFFFFFFull : ~0ull;
            const __mmask16 lanes = one ? 0x00FF : 0xFFFF;
            const long o = (b + 2 * p) * KK_Q_BLOCK;
            const __m512i w0 = _mm512_maskz_loadu_epi8(bytes, w0r + o), w1 = _mm512_maskz_loadu_epi8(bytes, w1r + o);
            const __m512i w2 = _mm512_maskz_loadu_epi8(bytes, w2r + o), w3 = _mm512_maskz_loadu_epi8(bytes, w3r + o);
            const __m512i s0 = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, bias, w0));
            const __m512i s1 = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, bias, w1));
            const __m512i s2 = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, bias, w2));
            const __m512i s3 = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, bias, w3));
            const __m512 e0 = kq512_spread(d0, 2 * p, 8), e1 = kq512_spread(d1, 2 * p, 8);
            const __m512 e2 = kq512_spread(d2, 2 * p, 8), e3 = kq512_spread(d3, 2 * p, 8);
#define KQ_ROW(r)                                                                                              \
            {                                                                                                  \
                const __m512i xv = _mm512_maskz_loadu_epi8(bytes, x->xu + (i0 + r) * k + o);                   \
                const __m512 dx = _mm512_loadu_ps(x->dxp + ((i0 + r) * pairs + (b / 2 + p)) * 16);             \
                a##r##0 = _mm512_mask3_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(s0, xv, w0)), _mm512_mul_ps(e0, dx), a##r##0, lanes); \
                a##r##1 = _mm512_mask3_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(s1, xv, w1)), _mm512_mul_ps(e1, dx), a##r##1, lanes); \
                a##r##2 = _mm512_mask3_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(s2, xv, w2)), _mm512_mul_ps(e2, dx), a##r##2, lanes); \
                a##r##3 = _mm512_mask3_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(s3, xv, w3)), _mm512_mul_ps(e3, dx), a##r##3, lanes); \
            }
            KQ_ROW(0) KQ_ROW(1) KQ_ROW(2) KQ_ROW(3)
#undef KQ_ROW
        }
    }
#define KQ_OUT(r)                                                                                              \
    c[(i0 + r) * ldc + j0] = kq512_reduce(a##r##0), c[(i0 + r) * ldc + j0 + 1] = kq512_reduce(a##r##1),        \
    c[(i0 + r) * ldc + j0 + 2] = kq512_reduce(a##r##2), c[(i0 + r) * ldc + j0 + 3] = kq512_reduce(a##r##3)
    KQ_OUT(0); KQ_OUT(1); KQ_OUT(2); KQ_OUT(3);
#undef KQ_OUT
}

// q4 times weight row j for m activation rows: four blocks (b ≡ 0 mod 4) per 64-byte load, low
// nibbles in lanes 4·(b mod 4) + l of one accumulator, high nibbles in the other.
KQ512 static inline void kq512_q4(int m, long j, long k, const quantized_rows *x, const uint8_t *q,
                                  const uint16_t *scales, const uint16_t *mins, long group, __m512i spread,
                                  float *c, long ldc) {
    const long groups = k / group, blocks = k / KK_Q_BLOCK, per = group / KK_Q_BLOCK;
    const uint8_t *row = q + j * (k / 2);
    const __m512i low4 = _mm512_set1_epi8(15);
    for (int i0 = 0; i0 < m; i0 += KQ_ROWS) {
        const int rows = m - i0 < KQ_ROWS ? m - i0 : KQ_ROWS;
        __m512 lo_acc[KQ_ROWS], hi_acc[KQ_ROWS];
        for (int r = 0; r < rows; r++) lo_acc[r] = hi_acc[r] = _mm512_setzero_ps();
        for (long b = 0; b < blocks; b += 16) {
            const long n = blocks - b < 16 ? blocks - b : 16;
            const __m512 d = kq512_block_scales(scales + j * groups, b, n, per, spread);
            for (long f = 0; 4 * f < n; f++) {
                const long count = n - 4 * f < 4 ? n - 4 * f : 4;  // blocks in this four
                const __mmask16 lanes = (__mmask16)((1u << (4 * count)) - 1);
                const __m512i bytes = _mm512_maskz_loadu_epi8(count == 4 ? ~0ull : (1ull << (16 * count)) - 1, row + (b + 4 * f) * 16);
                const __m512i lo = _mm512_and_si512(bytes, low4), hi = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low4);
                const __m512 dq = kq512_spread(d, 4 * f, 4);
                const uint8_t *xg = x->p + ((b + 4 * f) / 4) * 128;
                for (int r = 0; r < rows; r++) {
                    const long i = i0 + r;
                    const __m512 s = _mm512_mul_ps(dq, kq512_spread(kq512_dx(x, blocks, i, b, n), 4 * f, 4));
                    const __m512i xlo = _mm512_loadu_si512(xg + i * x->p_stride);
                    const __m512i xhi = _mm512_loadu_si512(xg + i * x->p_stride + 64);
                    lo_acc[r] = _mm512_mask3_fmadd_ps(kq512_dot4(lo, xlo), s, lo_acc[r], lanes);
                    hi_acc[r] = _mm512_mask3_fmadd_ps(kq512_dot4(hi, xhi), s, hi_acc[r], lanes);
                }
            }
        }
        for (int r = 0; r < rows; r++)
            c[(i0 + r) * ldc + j] = kq512_reduce(_mm512_add_ps(lo_acc[r], hi_acc[r])) +
                                    minimum_term_avx2(groups, mins + j * groups, x->t + (i0 + r) * groups);
    }
}

// q4, a tile of 4 activation rows (i0 ..) times 2 weight rows (j0, j0 + 1), batched decoding
// (4-16 rows): each four blocks of the weights split into nibbles once for 4 rows and each four
// blocks of activations loaded once for 2 weight rows; every output keeps kq512_q4's two chains
// (16 accumulators, by name: an array of them was kept in memory).
KQ512 static inline void kq512_q4_tile(long i0, long j0, long k, const quantized_rows *x, const uint8_t *q,
                                       const uint16_t *scales, const uint16_t *mins, long group, __m512i spread,
                                       float *c, long ldc) {
    const long groups = k / group, blocks = k / KK_Q_BLOCK, per = group / KK_Q_BLOCK;
    const uint8_t *w0r = q + j0 * (k / 2), *w1r = w0r + k / 2;
    const __m512i low4 = _mm512_set1_epi8(15);
#define KQ_ROW2(r) __m512 l##r##0 = _mm512_setzero_ps(), l##r##1 = l##r##0, h##r##0 = l##r##0, h##r##1 = l##r##0
    KQ_ROW2(0); KQ_ROW2(1); KQ_ROW2(2); KQ_ROW2(3);
#undef KQ_ROW2
    for (long b = 0; b < blocks; b += 16) {
        const long n = blocks - b < 16 ? blocks - b : 16;
        const __m512 d0 = kq512_block_scales(scales + j0 * groups, b, n, per, spread);
        const __m512 d1 = kq512_block_scales(scales + (j0 + 1) * groups, b, n, per, spread);
        const __m512 x0 = kq512_dx(x, blocks, i0, b, n), x1 = kq512_dx(x, blocks, i0 + 1, b, n);
        const __m512 x2 = kq512_dx(x, blocks, i0 + 2, b, n), x3 = kq512_dx(x, blocks, i0 + 3, b, n);
        for (long f = 0; 4 * f < n; f++) {
            const long count = n - 4 * f < 4 ? n - 4 * f : 4;  // blocks in this four
            const __mmask16 lanes = (__mmask16)((1u << (4 * count)) - 1);
            const __mmask64 bytes = count == 4 ? ~0ull : (1ull << (16 * count)) - 1;
            const __m512i v0 = _mm512_maskz_loadu_epi8(bytes, w0r + (b + 4 * f) * 16);
            const __m512i v1 = _mm512_maskz_loadu_epi8(bytes, w1r + (b + 4 * f) * 16);
            const __m512i lo0 = _mm512_and_si512(v0, low4), hi0 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), low4);
            const __m512i lo1 = _mm512_and_si512(v1, low4), hi1 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), low4);
            const __m512 e0 = kq512_spread(d0, 4 * f, 4), e1 = kq512_spread(d1, 4 * f, 4);
            const uint8_t *xg = x->p + ((b + 4 * f) / 4) * 128;
#define KQ_ROW(r)                                                                                              \
            {                                                                                                  \
                const __m512i xlo = _mm512_loadu_si512(xg + (i0 + r) * x->p_stride);                           \
                const __m512i xhi = _mm512_loadu_si512(xg + (i0 + r) * x->p_stride + 64);                      \
                const __m512 sx = kq512_spread(x##r, 4 * f, 4);                                                \
                const __m512 s0 = _mm512_mul_ps(e0, sx), s1 = _mm512_mul_ps(e1, sx);                           \
                l##r##0 = _mm512_mask3_fmadd_ps(kq512_dot4(lo0, xlo), s0, l##r##0, lanes);                     \
                h##r##0 = _mm512_mask3_fmadd_ps(kq512_dot4(hi0, xhi), s0, h##r##0, lanes);                     \
                l##r##1 = _mm512_mask3_fmadd_ps(kq512_dot4(lo1, xlo), s1, l##r##1, lanes);                     \
                h##r##1 = _mm512_mask3_fmadd_ps(kq512_dot4(hi1, xhi), s1, h##r##1, lanes);                     \
            }
            KQ_ROW(0) KQ_ROW(1) KQ_ROW(2) KQ_ROW(3)
#undef KQ_ROW
        }
    }
    const uint16_t *m0 = mins + j0 * groups, *m1 = m0 + groups;
#define KQ_OUT(r)                                                                                              \
    c[(i0 + r) * ldc + j0] = kq512_reduce(_mm512_add_ps(l##r##0, h##r##0)) + minimum_term_avx2(groups, m0, x->t + (i0 + r) * groups), \
    c[(i0 + r) * ldc + j0 + 1] = kq512_reduce(_mm512_add_ps(l##r##1, h##r##1)) + minimum_term_avx2(groups, m1, x->t + (i0 + r) * groups)
    KQ_OUT(0); KQ_OUT(1); KQ_OUT(2); KQ_OUT(3);
#undef KQ_OUT
}

// q4, one activation row (decoding) times weight row j: the accumulators stay in registers.
KQ512 static inline void kq512_q4_one(long j, long k, const quantized_rows *x, const uint8_t *q,
                                      const uint16_t *scales, const uint16_t *mins, long group, __m512i spread, float *c) {
    const long groups = k / group, blocks = k / KK_Q_BLOCK, per = group / KK_Q_BLOCK;
    const uint8_t *row = q + j * (k / 2);
    const __m512i low4 = _mm512_set1_epi8(15);
    __m512 lo_acc = _mm512_setzero_ps(), hi_acc = _mm512_setzero_ps();
    long b = 0;
    for (; b + 16 <= blocks; b += 16) {
        const __m512 s = _mm512_mul_ps(kq512_block_scales(scales + j * groups, b, 16, per, spread), _mm512_loadu_ps(x->dx + b));
        const uint8_t *xg = x->p + (b / 4) * 128;
        for (long f = 0; f < 4; f++) {
            const uint8_t *w = row + (b + 4 * f) * 16;
            _mm_prefetch((const char *)(w + KQ_PREFETCH_BYTES), _MM_HINT_T0);
            const __m512i bytes = _mm512_loadu_si512(w);
            const __m512i lo = _mm512_and_si512(bytes, low4), hi = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low4);
            const __m512 sf = kq512_spread(s, 4 * f, 4);
            lo_acc = _mm512_fmadd_ps(kq512_dot4(lo, _mm512_loadu_si512(xg + f * 128)), sf, lo_acc);
            hi_acc = _mm512_fmadd_ps(kq512_dot4(hi, _mm512_loadu_si512(xg + f * 128 + 64)), sf, hi_acc);
        }
    }
    if (b < blocks) {  // the last blocks, fewer than 16: as the general form does them
        const long n = blocks - b;
        const __m512 s = _mm512_mul_ps(kq512_block_scales(scales + j * groups, b, n, per, spread), kq512_dx(x, blocks, 0, b, n));
        for (long f = 0; 4 * f < n; f++) {
            const long count = n - 4 * f < 4 ? n - 4 * f : 4;
            const __mmask16 lanes = (__mmask16)((1u << (4 * count)) - 1);
            const __m512i bytes = _mm512_maskz_loadu_epi8(count == 4 ? ~0ull : (1ull << (16 * count)) - 1, row + (b + 4 * f) * 16);
            const __m512i lo = _mm512_and_si512(bytes, low4), hi = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low4);
            const __m512 sf = kq512_spread(s, 4 * f, 4);
            const uint8_t *xg = x->p + ((b + 4 * f) / 4) * 128;
            lo_acc = _mm512_mask3_fmadd_ps(kq512_dot4(lo, _mm512_loadu_si512(xg)), sf, lo_acc, lanes);
            hi_acc = _mm512_mask3_fmadd_ps(kq512_dot4(hi, _mm512_loadu_si512(xg + 64)), sf, hi_acc, lanes);
        }
    }
    c[j] = kq512_reduce(_mm512_add_ps(lo_acc, hi_acc)) + minimum_term_avx2(groups, mins + j * groups, x->t);
}

KQ512 static inline __m512i kq512_spread_index(long group) {
    const long per = group / KK_Q_BLOCK;
    int lanes[16];
    for (int l = 0; l < 16; l++) lanes[l] = (int)(l / per);
    return _mm512_loadu_si512(lanes);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
static void q8_rows_vnni(int m, long j0, long j1, long k, const quantized_rows *x, const void *q,
                         const uint16_t *scales, long group, float *c, long ldc) {
    const __m512i spread = kq512_spread_index(group);
    // One activation row (decoding): one weight row at a time, a single stream for the hardware
    // prefetcher (two or four rows at a time read slower from memory, docs/benchmarks.md).
    if (m == 1) {
        for (long j = j0; j < j1; j++) kq512_q8_one(j, k, x, q, scales, group, spread, c);
    } else if (x->xu) {  // many rows: 4 × 4 tiles, the rows and weight rows left over one by one
        const long j4 = j0 + (j1 - j0) / 4 * 4;
        const int m4 = m / 4 * 4;
        // 32 activation rows at a time (their bytes stay in L2) against every tile of weight rows.
        for (int i32 = 0; i32 < m4; i32 += 32)
            for (long j = j0; j < j4; j += 4)
                for (int i = i32; i < m4 && i < i32 + 32; i += 4) kq512_q8_tile(i, j, k, x, q, scales, group, spread, c, ldc);
        for (long j = j4; j < j1; j++) kq512_q8(m, j, k, x, q, scales, group, spread, c, ldc);
        if (m4 < m) {
            quantized_rows rest = *x;
            rest.q += (long)m4 * k;
            rest.dx += (long)m4 * (k / KK_Q_BLOCK);
            for (long j = j0; j < j4; j++) kq512_q8(m - m4, j, k, &rest, q, scales, group, spread, c + (long)m4 * ldc, ldc);
        }
    } else {
        for (long j = j0; j < j1; j++) kq512_q8(m, j, k, x, q, scales, group, spread, c, ldc);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
static void q4_rows_vnni(int m, long j0, long j1, long k, const quantized_rows *x, const void *q,
                         const uint16_t *scales, const uint16_t *mins, long group, float *c, long ldc) {
    const __m512i spread = kq512_spread_index(group);
    if (m == 1) {
        for (long j = j0; j < j1; j++) kq512_q4_one(j, k, x, q, scales, mins, group, spread, c);
    } else if (m >= KQ_TILE_ROWS) {  // 4 × 2 tiles, the rows and weight rows left over one by one
        const long j2 = j0 + (j1 - j0) / 2 * 2;
        const int m4 = m / 4 * 4;
        for (long j = j0; j < j2; j += 2)
            for (int i = 0; i < m4; i += 4) kq512_q4_tile(i, j, k, x, q, scales, mins, group, spread, c, ldc);
        if (j2 < j1) kq512_q4(m, j2, k, x, q, scales, mins, group, spread, c, ldc);
        if (m4 < m) {
            quantized_rows rest = *x;
            rest.p += (long)m4 * x->p_stride;
            rest.dx += (long)m4 * (k / KK_Q_BLOCK);
            rest.t += (long)m4 * (k / group);
            for (long j = j0; j < j2; j++) kq512_q4(m - m4, j, k, &rest, q, scales, mins, group, spread, c + (long)m4 * ldc, ldc);
        }
    } else {
        for (long j = j0; j < j1; j++) kq512_q4(m, j, k, x, q, scales, mins, group, spread, c, ldc);
    }
}
#endif

struct kk_q_activations {
    quantized_rows rows;
    int m;
    long k, group;
};

kk_q_activations *kk_q_activations_make(int bits, int m, long k, const float *a, long lda, long group) {
    if (m <= 0 || (bits != 4 && bits != 8) || !valid_layout(k, group)) return NULL;
    kk_q_activations *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->m = m;
    x->k = k;
    x->group = group;
    if (quantize_rows(m, k, a, lda, group, bits == 4, &x->rows) != 0) {
        kk_q_activations_free(x);
        return NULL;
    }
    return x;
}

void kk_q_activations_free(kk_q_activations *x) {
    if (!x) return;
    free_rows(&x->rows);
    free(x);
}

static void q_rows_prepared(int bits, long j0, long j1, const kk_q_activations *a, const void *q,
                            const uint16_t *scales, const uint16_t *mins, float *c, long ldc) {
    if (j1 <= j0) return;
    if (bits == 4 && a->rows.p == NULL) abort();  // activations prepared for q8 cannot feed q4
    const int m = a->m;
    const long k = a->k, group = a->group;
    const quantized_rows *x = &a->rows;
#if KQ_X86
    int isa = kk_active_isa();
    static int vnni = -1;
    if (vnni < 0) vnni = __builtin_cpu_supports("avx512vnni") ? 1 : 0;
    if (isa >= KK_ISA_AVX512 && vnni) {
        if (bits == 8) q8_rows_vnni(m, j0, j1, k, x, q, scales, group, c, ldc);
        else q4_rows_vnni(m, j0, j1, k, x, q, scales, mins, group, c, ldc);
    } else if (isa >= KK_ISA_AVX2) {
        if (bits == 8) q8_rows_avx2(m, j0, j1, k, x, q, scales, group, c, ldc);
        else q4_rows_avx2(m, j0, j1, k, x, q, scales, mins, group, c, ldc);
    } else {
        q_rows_scalar(bits, m, j0, j1, k, x, q, scales, mins, group, c, ldc);
    }
#else
    q_rows_scalar(bits, m, j0, j1, k, x, q, scales, mins, group, c, ldc);
#endif
}

void kk_q8_rows_times_prepared(long j0, long j1, const kk_q_activations *x, const int8_t *q, const uint16_t *scales,
                               float *c, long ldc) {
    q_rows_prepared(8, j0, j1, x, q, scales, NULL, c, ldc);
}

void kk_q4_rows_times_prepared(long j0, long j1, const kk_q_activations *x, const uint8_t *q, const uint16_t *scales,
                               const uint16_t *mins, float *c, long ldc) {
    q_rows_prepared(4, j0, j1, x, q, scales, mins, c, ldc);
}

static void q_rows(int bits, int m, long j0, long j1, long k, const float *a, long lda, const void *q,
                   const uint16_t *scales, const uint16_t *mins, long group, float *c, long ldc) {
    if (m <= 0 || j1 <= j0) return;
    kk_q_activations *x = kk_q_activations_make(bits, m, k, a, lda, group);
    if (!x) abort();  // out of memory for a few rows of activations (or a layout the loader rejects)
    q_rows_prepared(bits, j0, j1, x, q, scales, mins, c, ldc);
    kk_q_activations_free(x);
}

void kk_q8_rows_times_weight(int m, long j0, long j1, long k, const float *a, long lda, const int8_t *q,
                             const uint16_t *scales, long group, float *c, long ldc) {
    q_rows(8, m, j0, j1, k, a, lda, q, scales, NULL, group, c, ldc);
}

void kk_q4_rows_times_weight(int m, long j0, long j1, long k, const float *a, long lda, const uint8_t *q,
                             const uint16_t *scales, const uint16_t *mins, long group, float *c, long ldc) {
    q_rows(4, m, j0, j1, k, a, lda, q, scales, mins, group, c, ldc);
}
