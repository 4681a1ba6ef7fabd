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
//     acc[l] = fmaf((float)t, d·dx_b, acc[l])   (d the weight's float16 scale of b's group,
//                                                 d·dx_b one float32 product)
//   q4 adds sum over groups g of m_g · T_g, T_g = sum over b in g of dx_b·(float)S_b (fmaf in
//   block order, S_b the exact sum of qx over the block), accumulated in 16 lanes (g mod 16);
//   result = reduce(acc) [+ reduce(min lanes)], each reduction the fixed pairwise tree below.

/// Activations of `m` rows quantized per 32-column block (shared by every ISA level and thread
/// split, so the same everywhere).
typedef struct {
    int8_t *q;      // m × k
    float *dx;      // m × k/32
    float *t;       // m × groups (q4 only): sum over the group's blocks of dx·S
    int *s;         // m × k/32 (q4 only): the exact sum of each block's levels
} quantized_rows;

static int quantize_rows(int m, long k, const float *a, long lda, long group, int with_sums, quantized_rows *out) {
    const long blocks = k / KK_Q_BLOCK, groups = k / group;
    out->q = malloc((size_t)m * k);
    out->dx = malloc((size_t)m * blocks * sizeof(float));
    out->t = with_sums ? malloc((size_t)m * groups * sizeof(float)) : NULL;
    out->s = with_sums ? malloc((size_t)m * blocks * sizeof(int)) : NULL;
    if (!out->q || !out->dx || (with_sums && (!out->t || !out->s))) return -1;
    for (int i = 0; i < m; i++) {
        const float *x = a + (long)i * lda;
        for (long b = 0; b < blocks; b++) {
            const float *xb = x + b * KK_Q_BLOCK;
            float amax = 0;
            for (int u = 0; u < KK_Q_BLOCK; u++) {
                float v = fabsf(xb[u]);
                amax = v > amax ? v : amax;
            }
            const float dx = amax / 127.0f;
            int8_t *qb = out->q + (long)i * k + b * KK_Q_BLOCK;
            int sum = 0;
            for (int u = 0; u < KK_Q_BLOCK; u++) {
                float v = dx == 0 ? 0 : nearbyintf(xb[u] / dx);
                v = v > 127 ? 127 : (v < -127 ? -127 : v);
                qb[u] = (int8_t)v;
                sum += qb[u];
            }
            out->dx[(long)i * blocks + b] = dx;
            if (with_sums) out->s[(long)i * blocks + b] = sum;
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
            float acc[8] = {0};
            for (long b = 0; b < blocks; b++) {
                block_levels(bits, row, b, levels);
                const float s = f32_from_f16_scalar(scales[j * groups + b / per]) * x->dx[(long)i * blocks + b];
                for (int l = 0; l < 8; l++) {
                    int t = 0;
                    for (int u = 0; u < 4; u++) t += (int)qx[b * KK_Q_BLOCK + 4 * l + u] * (int)levels[4 * l + u];
                    acc[l] = fmaf((float)t, s, acc[l]);
                }
            }
            float sum = reduce8_tree(acc);
            if (bits == 4) sum += minimum_term_scalar(groups, mins + j * groups, x->t + (long)i * groups);
            c[(long)i * ldc + j] = sum;
        }
    }
}

#if KQ_X86
// The same definition with 8-lane integer dot products: AVX-512 VNNI (vpdpbusd on 256 bits) or
// AVX2 (vpmaddubsw + vpmaddwd, exact here: |qx|, |q| ≤ 127, so no pair saturates). vpdpbusd and
// vpmaddubsw multiply unsigned by signed bytes: q8 takes |q| and qx with q's sign; q4's levels
// are unsigned already.

#define KQ_ROWS 16

// One block's weight levels as 32 bytes (q4: the nibbles spread to bytes in column order).
#define KQ_LOAD_LEVELS(BITS, ROW, B)                                                                     \
    ((BITS) == 8 ? _mm256_loadu_si256((const __m256i *)((ROW) + (B) * KK_Q_BLOCK))                       \
                 : _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(_mm_loadu_si128((const __m128i *)((ROW) + (B) * 16)), 4), \
                                                     _mm_loadu_si128((const __m128i *)((ROW) + (B) * 16))), \
                                    _mm256_set1_epi8(15)))

// acc += (the block's integer dot products) · (d · dx) for weight levels W and activation levels XV.
#define KQ_STEP(BITS, DOT, W, XV, SCALE, ACC)                                                            \
    do {                                                                                                 \
        __m256i w_ = (W);                                                                                \
        __m256i t_ = (BITS) == 8 ? DOT(_mm256_abs_epi8(w_), _mm256_sign_epi8((XV), w_)) : DOT(w_, (XV)); \
        (ACC) = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t_), _mm256_set1_ps(SCALE), (ACC));                   \
    } while (0)

// The same with the scale already a vector.
#define KQ_STEP_V(BITS, DOT, W, XV, SCALES, ACC)                                                         \
    do {                                                                                                 \
        __m256i w_ = (W);                                                                                \
        __m256i t_ = (BITS) == 8 ? DOT(_mm256_abs_epi8(w_), _mm256_sign_epi8((XV), w_)) : DOT(w_, (XV)); \
        (ACC) = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t_), (SCALES), (ACC));                                \
    } while (0)

#define KQ_DEFINE_ROWS(NAME, BITS, TARGET, DOT)                                                          \
__attribute__((target(TARGET)))                                                                          \
static void NAME(int m, long j0, long j1, long k, const quantized_rows *x, const void *q,               \
                 const uint16_t *scales, const uint16_t *mins, long group, float *c, long ldc) {         \
    const long groups = k / group, blocks = k / KK_Q_BLOCK, per = group / KK_Q_BLOCK;                    \
    const long row_bytes = (BITS) == 8 ? k : k / 2;                                                      \
    long j = j0;                                                                                         \
    if (m == 1) {                                                                                        \
        /* One activation row (decoding): four weight rows at once, accumulators in registers. */       \
        for (; j + 4 <= j1; j += 4) {                                                                    \
            const uint8_t *r0 = (const uint8_t *)q + j * row_bytes, *r1 = r0 + row_bytes;                \
            const uint8_t *r2 = r1 + row_bytes, *r3 = r2 + row_bytes;                                    \
            const uint16_t *s0 = scales + j * groups, *s1 = s0 + groups, *s2 = s1 + groups, *s3 = s2 + groups; \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                  \
            long b = 0;                                                                                  \
            if (per <= 8)                                                                                \
            for (; b + 8 <= blocks && (b + 8) / per <= groups && b / per + 8 <= groups; b += 8) {        \
                /* Eight blocks' d·dx as vectors: the group scales spread to blocks (lane l takes    */ \
                /* group (b + l) / per), times the blocks' dx, each lane one float32 product.       */  \
                const __m256i spread = _mm256_setr_epi32(0, 1 / per, 2 / per, 3 / per, 4 / per, 5 / per, 6 / per, 7 / per); \
                /* The next four rows' bytes of these blocks, ahead of the hardware prefetcher. */     \
                for (long line = 0; line < 8 * ((BITS) == 8 ? KK_Q_BLOCK : 16); line += 64)            \
                    for (int u = 4; u < 8; u++)                                                          \
                        _mm_prefetch((const char *)(r0 + u * row_bytes + b * ((BITS) == 8 ? KK_Q_BLOCK : 16) + line), _MM_HINT_T0); \
                const __m256 dxv = _mm256_loadu_ps(x->dx + b);                                           \
                const long g = b / per;                                                                  \
                const __m256 v0 = _mm256_mul_ps(_mm256_permutevar8x32_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s0 + g))), spread), dxv); \
                const __m256 v1 = _mm256_mul_ps(_mm256_permutevar8x32_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s1 + g))), spread), dxv); \
                const __m256 v2 = _mm256_mul_ps(_mm256_permutevar8x32_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s2 + g))), spread), dxv); \
                const __m256 v3 = _mm256_mul_ps(_mm256_permutevar8x32_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s3 + g))), spread), dxv); \
                for (int l = 0; l < 8; l++) {                                                            \
                    const __m256i xv = _mm256_loadu_si256((const __m256i *)(x->q + (b + l) * KK_Q_BLOCK)); \
                    const __m256i lane = _mm256_set1_epi32(l);                                           \
                    KQ_STEP_V(BITS, DOT, KQ_LOAD_LEVELS(BITS, r0, b + l), xv, _mm256_permutevar8x32_ps(v0, lane), a0); \
                    KQ_STEP_V(BITS, DOT, KQ_LOAD_LEVELS(BITS, r1, b + l), xv, _mm256_permutevar8x32_ps(v1, lane), a1); \
                    KQ_STEP_V(BITS, DOT, KQ_LOAD_LEVELS(BITS, r2, b + l), xv, _mm256_permutevar8x32_ps(v2, lane), a2); \
                    KQ_STEP_V(BITS, DOT, KQ_LOAD_LEVELS(BITS, r3, b + l), xv, _mm256_permutevar8x32_ps(v3, lane), a3); \
                }                                                                                        \
            }                                                                                            \
            for (; b < blocks; b++) {                                                                    \
                const __m256i xv = _mm256_loadu_si256((const __m256i *)(x->q + b * KK_Q_BLOCK));         \
                const float dx = x->dx[b];                                                               \
                const long g = b / per;                                                                  \
                KQ_STEP(BITS, DOT, KQ_LOAD_LEVELS(BITS, r0, b), xv, _cvtsh_ss(s0[g]) * dx, a0);          \
                KQ_STEP(BITS, DOT, KQ_LOAD_LEVELS(BITS, r1, b), xv, _cvtsh_ss(s1[g]) * dx, a1);          \
                KQ_STEP(BITS, DOT, KQ_LOAD_LEVELS(BITS, r2, b), xv, _cvtsh_ss(s2[g]) * dx, a2);          \
                KQ_STEP(BITS, DOT, KQ_LOAD_LEVELS(BITS, r3, b), xv, _cvtsh_ss(s3[g]) * dx, a3);          \
            }                                                                                            \
            __m256 accs[4] = {a0, a1, a2, a3};                                                           \
            for (int u = 0; u < 4; u++) {                                                                \
                float lanes[8];                                                                          \
                _mm256_storeu_ps(lanes, accs[u]);                                                        \
                float sum = reduce8_tree(lanes);                                                         \
                if ((BITS) == 4) sum += minimum_term_avx2(groups, mins + (j + u) * groups, x->t);      \
                c[j + u] = sum;                                                                          \
            }                                                                                            \
        }                                                                                                \
    }                                                                                                    \
    for (; j < j1; j++) {                                                                                \
        const uint8_t *row = (const uint8_t *)q + j * row_bytes;                                         \
        for (int i0 = 0; i0 < m; i0 += KQ_ROWS) {                                                        \
            const int rows = m - i0 < KQ_ROWS ? m - i0 : KQ_ROWS;                                        \
            __m256 acc[KQ_ROWS];                                                                         \
            for (int r = 0; r < rows; r++) acc[r] = _mm256_setzero_ps();                                 \
            for (long b = 0; b < blocks; b++) {                                                          \
                const __m256i w = KQ_LOAD_LEVELS(BITS, row, b);                                          \
                const float d = _cvtsh_ss(scales[j * groups + b / per]);                                 \
                for (int r = 0; r < rows; r++) {                                                         \
                    const long i = i0 + r;                                                               \
                    const __m256i xv = _mm256_loadu_si256((const __m256i *)(x->q + i * k + b * KK_Q_BLOCK)); \
                    KQ_STEP(BITS, DOT, w, xv, d * x->dx[i * blocks + b], acc[r]);                        \
                }                                                                                        \
            }                                                                                            \
            for (int r = 0; r < rows; r++) {                                                             \
                float lanes[8];                                                                          \
                _mm256_storeu_ps(lanes, acc[r]);                                                         \
                float sum = reduce8_tree(lanes);                                                         \
                if ((BITS) == 4) sum += minimum_term_avx2(groups, mins + j * groups, x->t + (i0 + r) * groups); \
                c[(i0 + r) * ldc + j] = sum;                                                             \
            }                                                                                            \
        }                                                                                                \
    }                                                                                                    \
}

// The minimums' term in two 8-lane vectors (lanes g mod 16), the same fmaf per lane as the
// scalar form, so the same bits.
__attribute__((target("avx2,fma,f16c")))
static inline float minimum_term_avx2(long groups, const uint16_t *mins, const float *t) {
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

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
static inline __m256i dot_vnni(__m256i u, __m256i s) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s); }

__attribute__((target("avx2,fma,f16c")))
static inline __m256i dot_avx2(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

KQ_DEFINE_ROWS(q8_rows_vnni, 8, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", dot_vnni)
KQ_DEFINE_ROWS(q4_rows_vnni, 4, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", dot_vnni)
KQ_DEFINE_ROWS(q8_rows_avx2, 8, "avx2,fma,f16c", dot_avx2)
KQ_DEFINE_ROWS(q4_rows_avx2, 4, "avx2,fma,f16c", dot_avx2)
#endif

static void q_rows(int bits, int m, long j0, long j1, long k, const float *a, long lda, const void *q,
                   const uint16_t *scales, const uint16_t *mins, long group, float *c, long ldc) {
    if (m <= 0 || j1 <= j0) return;
    quantized_rows x;
    if (quantize_rows(m, k, a, lda, group, bits == 4, &x) != 0) {
        free_rows(&x);
        abort();  // out of memory for a few rows of activations: nothing sensible to return
    }
#if KQ_X86
    int isa = kk_active_isa();
    static int vnni = -1;
    if (vnni < 0) vnni = __builtin_cpu_supports("avx512vnni") ? 1 : 0;
    if (isa >= KK_ISA_AVX512 && vnni) {
        if (bits == 8) q8_rows_vnni(m, j0, j1, k, &x, q, scales, mins, group, c, ldc);
        else q4_rows_vnni(m, j0, j1, k, &x, q, scales, mins, group, c, ldc);
    } else if (isa >= KK_ISA_AVX2) {
        if (bits == 8) q8_rows_avx2(m, j0, j1, k, &x, q, scales, mins, group, c, ldc);
        else q4_rows_avx2(m, j0, j1, k, &x, q, scales, mins, group, c, ldc);
    } else {
        q_rows_scalar(bits, m, j0, j1, k, &x, q, scales, mins, group, c, ldc);
    }
#else
    q_rows_scalar(bits, m, j0, j1, k, &x, q, scales, mins, group, c, ldc);
#endif
    free_rows(&x);
}

void kk_q8_rows_times_weight(int m, long j0, long j1, long k, const float *a, long lda, const int8_t *q,
                             const uint16_t *scales, long group, float *c, long ldc) {
    q_rows(8, m, j0, j1, k, a, lda, q, scales, NULL, group, c, ldc);
}

void kk_q4_rows_times_weight(int m, long j0, long j1, long k, const float *a, long lda, const uint8_t *q,
                             const uint16_t *scales, const uint16_t *mins, long group, float *c, long ldc) {
    q_rows(4, m, j0, j1, k, a, lda, q, scales, mins, group, c, ldc);
}
