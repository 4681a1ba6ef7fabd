#include "kosmos_kernels.h"
#include "kk_half.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define KK_X86 1
#else
#define KK_X86 0
#endif

#if defined(__linux__) && __has_include(<dnnl.h>)
#include <dlfcn.h>
#include <dnnl.h>
#define KK_DNNL 1
#else
#define KK_DNNL 0
#endif

// MARK: CPU features

static int detected_isa = -1;
static int isa_limit = KK_ISA_AVX512_BF16;

int kk_cpu_isa(void) {
    if (detected_isa >= 0) return detected_isa;
    int level = KK_ISA_SCALAR;
#if KK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
        level = KK_ISA_AVX2;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
            level = KK_ISA_AVX512;
            if (__builtin_cpu_supports("avx512bf16")) level = KK_ISA_AVX512_BF16;
        }
    }
#endif
    detected_isa = level;
    return level;
}

int kk_active_isa(void) {
    int cpu = kk_cpu_isa();
    return cpu < isa_limit ? cpu : isa_limit;
}

void kk_set_isa_limit(int level) { isa_limit = level < 0 ? 0 : level; }

const char *kk_isa_name(int level) {
    switch (level) {
    case KK_ISA_AVX2: return "avx2";
    case KK_ISA_AVX512: return "avx512";
    case KK_ISA_AVX512_BF16: return "avx512_bf16";
    default: return "scalar";
    }
}

// MARK: Reading memory (the bandwidth the decoding benchmark divides by)

#if KK_X86
__attribute__((target("avx512f")))
static float read_sum_avx512(const float *p, size_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_loadu_ps(p + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_loadu_ps(p + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_loadu_ps(p + i + 48));
        a4 = _mm512_add_ps(a4, _mm512_loadu_ps(p + i + 64));
        a5 = _mm512_add_ps(a5, _mm512_loadu_ps(p + i + 80));
        a6 = _mm512_add_ps(a6, _mm512_loadu_ps(p + i + 96));
        a7 = _mm512_add_ps(a7, _mm512_loadu_ps(p + i + 112));
    }
    float total = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                                                     _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7))));
    for (; i < n; i++) total += p[i];
    return total;
}
#endif

float kk_read_sum(const float *p, size_t n) {
#if KK_X86
    if (kk_cpu_isa() >= KK_ISA_AVX512) return read_sum_avx512(p, n);
#endif
    float a[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) a[l] += p[i + l];
    float total = 0;
    for (int l = 0; l < 16; l++) total += a[l];
    for (; i < n; i++) total += p[i];
    return total;
}

// MARK: Conversions

static inline uint16_t bf16_from_f32_scalar(float value) {
    uint32_t bits;
    memcpy(&bits, &value, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u; // every NaN, as PyTorch's c10::BFloat16
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

static inline float f32_from_bf16_scalar(uint16_t value) {
    uint32_t bits = (uint32_t)value << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}


/// One 16-bit weight, float16 (`half`) or bfloat16, exactly as float32.
static inline float widen_scalar(uint16_t value, int half) {
    return half ? f32_from_f16_scalar(value) : f32_from_bf16_scalar(value);
}

#if KK_X86
__attribute__((target("avx512f,avx512bw,avx512vl")))
static void bf16_from_f32_avx512(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i canonical_nan = _mm512_set1_epi32(0x7fc00000);
    for (; i + 16 <= n; i += 16) {
        __m512i bits = _mm512_castps_si512(_mm512_loadu_ps(src + i));
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, abs_mask), inf);
        __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), one);
        __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(bias, lsb));
        rounded = _mm512_mask_mov_epi32(rounded, nan, canonical_nan);
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded, 16)));
    }
    for (; i < n; i++) dst[i] = bf16_from_f32_scalar(src[i]);
}

__attribute__((target("avx512f,avx512bw,avx512vl")))
static void f32_from_bf16_avx512(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
    }
    for (; i < n; i++) dst[i] = f32_from_bf16_scalar(src[i]);
}

__attribute__((target("avx2,fma,f16c")))
static void f16_from_f32_f16c(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = f16_from_f32_scalar(src[i]);
}

__attribute__((target("avx2,fma,f16c")))
static void f32_from_f16_f16c(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = f32_from_f16_scalar(src[i]);
}
#endif

void kk_bf16_from_f32(const float *src, uint16_t *dst, size_t n) {
#if KK_X86
    if (kk_active_isa() >= KK_ISA_AVX512) { bf16_from_f32_avx512(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = bf16_from_f32_scalar(src[i]);
}

void kk_f32_from_bf16(const uint16_t *src, float *dst, size_t n) {
#if KK_X86
    if (kk_active_isa() >= KK_ISA_AVX512) { f32_from_bf16_avx512(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = f32_from_bf16_scalar(src[i]);
}

void kk_f16_from_f32(const float *src, uint16_t *dst, size_t n) {
#if KK_X86
    if (kk_active_isa() >= KK_ISA_AVX2) { f16_from_f32_f16c(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = f16_from_f32_scalar(src[i]);
}

void kk_f32_from_f16(const uint16_t *src, float *dst, size_t n) {
#if KK_X86
    if (kk_active_isa() >= KK_ISA_AVX2) { f32_from_f16_f16c(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = f32_from_f16_scalar(src[i]);
}

// MARK: Few rows times a 16-bit weight

// Scalar: one float32 sum per output in order of p (the reference the SIMD paths are tested against).
static void rows_times_weight_scalar(int half, int m, long j0, long j1, long k, const float *a, long lda,
                                     const uint16_t *w, long ldw, float *c, long ldc) {
    for (long j = j0; j < j1; j++) {
        const uint16_t *row = w + j * ldw;
        for (int i = 0; i < m; i++) {
            const float *x = a + (long)i * lda;
            float sum = 0;
            for (long p = 0; p < k; p++) {
                sum += x[p] * widen_scalar(row[p], half);
            }
            c[(long)i * ldc + j] = sum;
        }
    }
}

#if KK_X86
__attribute__((target("avx512f,avx512bw,avx512vl,f16c")))
static inline __m512 widen16(const uint16_t *p, __mmask16 mask, int half) {
    __m256i h = _mm256_maskz_loadu_epi16(mask, p);
    if (half) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// Each output is one chain of 16-lane partial sums over p (step 16, the tail masked), then one
// fixed-order lane reduction: the same numbers whichever columns are grouped together.
__attribute__((target("avx512f,avx512bw,avx512vl,f16c")))
static void rows_times_weight_avx512(int half, int m, long j0, long j1, long k, const float *a, long lda,
                                     const uint16_t *w, long ldw, float *c, long ldc) {
    const long full = k / 16 * 16;
    const __mmask16 tail = (__mmask16)((1u << (k - full)) - 1u);
    long j = j0;
    if (m == 1) {
        // One weight row at a time: a single stream per thread, which the hardware prefetcher
        // follows at the memory's speed (four rows at a time read slower, as the quantized kernels
        // found, docs/benchmarks.md). Each output is still its own chain, so the same numbers.
        for (; j < j1; j++) {
            const uint16_t *row = w + j * ldw;
            __m512 s0 = _mm512_setzero_ps();
            long p = 0;
            for (; p < full; p += 16) {
                _mm_prefetch((const char *)(row + p) + 4096, _MM_HINT_T0);
                s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + p), widen16(row + p, 0xffff, half), s0);
            }
            if (tail) s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a + p), widen16(row + p, tail, half), s0);
            c[j] = _mm512_reduce_add_ps(s0);
        }
    }
    for (; j < j1; j++) {
        const uint16_t *row = w + j * ldw;
        __m512 s[4];
        for (int i0 = 0; i0 < m; i0 += 4) {
            int rows = m - i0 < 4 ? m - i0 : 4;
            for (int r = 0; r < 4; r++) s[r] = _mm512_setzero_ps();
            long p = 0;
            for (; p < full; p += 16) {
                __m512 wv = widen16(row + p, 0xffff, half);
                for (int r = 0; r < rows; r++)
                    s[r] = _mm512_fmadd_ps(_mm512_loadu_ps(a + (long)(i0 + r) * lda + p), wv, s[r]);
            }
            if (tail) {
                __m512 wv = widen16(row + p, tail, half);
                for (int r = 0; r < rows; r++)
                    s[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a + (long)(i0 + r) * lda + p), wv, s[r]);
            }
            for (int r = 0; r < rows; r++) c[(long)(i0 + r) * ldc + j] = _mm512_reduce_add_ps(s[r]);
        }
    }
}

__attribute__((target("avx2,fma,f16c")))
static inline __m256 widen8(const uint16_t *p, int half) {
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (half) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx2,fma,f16c")))
static float reduce8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}

// 8 lanes over the multiple-of-8 part, then the tail in order, added last.
__attribute__((target("avx2,fma,f16c")))
static void rows_times_weight_avx2(int half, int m, long j0, long j1, long k, const float *a, long lda,
                                   const uint16_t *w, long ldw, float *c, long ldc) {
    const long full = k / 8 * 8;
    for (long j = j0; j < j1; j++) {
        const uint16_t *row = w + j * ldw;
        for (int i = 0; i < m; i++) {
            const float *x = a + (long)i * lda;
            __m256 s = _mm256_setzero_ps();
            for (long p = 0; p < full; p += 8) s = _mm256_fmadd_ps(_mm256_loadu_ps(x + p), widen8(row + p, half), s);
            float sum = reduce8(s);
            for (long p = full; p < k; p++) {
                sum += x[p] * widen_scalar(row[p], half);
            }
            c[(long)i * ldc + j] = sum;
        }
    }
}
#endif

static void rows_times_weight(int half, int m, long j0, long j1, long k, const float *a, long lda,
                              const uint16_t *w, long ldw, float *c, long ldc) {
#if KK_X86
    int isa = kk_active_isa();
    if (isa >= KK_ISA_AVX512) { rows_times_weight_avx512(half, m, j0, j1, k, a, lda, w, ldw, c, ldc); return; }
    if (isa >= KK_ISA_AVX2) { rows_times_weight_avx2(half, m, j0, j1, k, a, lda, w, ldw, c, ldc); return; }
#endif
    rows_times_weight_scalar(half, m, j0, j1, k, a, lda, w, ldw, c, ldc);
}

void kk_rows_times_weight_bf16(int m, long j0, long j1, long k, const float *a, long lda,
                               const uint16_t *w, long ldw, float *c, long ldc) {
    rows_times_weight(0, m, j0, j1, k, a, lda, w, ldw, c, ldc);
}

void kk_rows_times_weight_f16(int m, long j0, long j1, long k, const float *a, long lda,
                              const uint16_t *w, long ldw, float *c, long ldc) {
    rows_times_weight(1, m, j0, j1, k, a, lda, w, ldw, c, ldc);
}

// MARK: Attention tiles

// The portable loops are compiled for AVX2 and the baseline ISA (the inner loop runs over contiguous
// j or e, which the compiler vectorises; each score is four chains over d, d mod 4, summed
// pairwise). AVX-512 has its own register-blocked versions below (two chains per score). The tests
// hold every level to a float64 sum.
#define KK_SCORES_BODY                                                                          \
    for (int p = 0; p < d; p++)                                                                 \
        for (int j = 0; j < cols; j++) kt[(long)p * cols + j] = k[(long)j * ldk + p];           \
    for (int i = 0; i < rows; i++) {                                                            \
        float *restrict out = s + (long)i * lds;                                                \
        const float *restrict qi = q + (long)i * ldq;                                           \
        /* Four partial sums (p mod 4), added at the end: chains a quarter as long. */          \
        float part[4][cols];                                                                    \
        for (int c = 0; c < 4; c++)                                                             \
            for (int j = 0; j < cols; j++) part[c][j] = 0;                                      \
        for (int p = 0; p < d; p++) {                                                           \
            const float a = qi[p];                                                              \
            const float *restrict row = kt + (long)p * cols;                                    \
            float *restrict acc = part[p & 3];                                                  \
            for (int j = 0; j < cols; j++) acc[j] += a * row[j];                                \
        }                                                                                       \
        for (int j = 0; j < cols; j++)                                                          \
            out[j] = ((part[0][j] + part[1][j]) + (part[2][j] + part[3][j])) * scale;           \
    }

#define KK_ACCUMULATE_BODY                                                                      \
    for (int i = 0; i < rows; i++) {                                                            \
        float *restrict out = acc + (long)i * ldacc;                                            \
        const float *restrict pi = p + (long)i * ldp;                                           \
        for (int j = 0; j < cols; j++) {                                                        \
            const float a = pi[j];                                                              \
            if (a == 0) continue;                                                               \
            const float *restrict row = v + (long)j * ldv;                                      \
            for (int e = 0; e < dv; e++) out[e] += a * row[e];                                  \
        }                                                                                       \
    }

#if KK_X86
__attribute__((target("avx512f,avx512bw,avx512vl,fma")))
static void scores_avx512_one(int cols, int d, const float *restrict q, const float *restrict k, long ldk, float scale,
                              float *restrict s) {
    // One query (a decoding step): each key's dot product straight from its row, no transposed
    // block (which for one query costs more than the products).
    for (int j = 0; j < cols; j++) {
        const float *kr = k + (long)j * ldk;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        int p = 0;
        for (; p + 32 <= d; p += 32) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + p), _mm512_loadu_ps(kr + p), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + p + 16), _mm512_loadu_ps(kr + p + 16), a1);
        }
        for (; p < d; p += 16) {
            __mmask16 m = d - p >= 16 ? 0xffff : (__mmask16)((1u << (d - p)) - 1u);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + p), _mm512_maskz_loadu_ps(m, kr + p), a0);
        }
        s[j] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) * scale;
    }
}

// AVX-512: 4 query rows × 32 keys per block in registers, two partial sums per score (even and odd
// d), so each transposed key row loaded is used by 4 queries and nothing is stored until the end.
// A block past the last row repeats the last row (its results are not written); one row
// takes the path above.
__attribute__((target("avx512f,avx512bw,avx512vl,fma")))
static void scores_avx512(int rows, int cols, int d, const float *restrict q, long ldq, const float *restrict k, long ldk,
                          float scale, float *restrict s, long lds, float *restrict kt) {
    if (rows == 1) { scores_avx512_one(cols, d, q, k, ldk, scale, s); return; }
    for (int p = 0; p < d; p++)
        for (int j = 0; j < cols; j++) kt[(long)p * cols + j] = k[(long)j * ldk + p];
    const __m512 sv = _mm512_set1_ps(scale);
    for (int i0 = 0; i0 < rows; i0 += 4) {
        const float *qr[4];
        for (int r = 0; r < 4; r++) qr[r] = q + (long)(i0 + r < rows ? i0 + r : rows - 1) * ldq;
        for (int j0 = 0; j0 < cols; j0 += 32) {
            int left = cols - j0;
            __mmask16 m0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1u);
            __mmask16 m1 = left >= 32 ? 0xffff : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1u);
            __m512 e[4][2], o[4][2];
            for (int r = 0; r < 4; r++) e[r][0] = e[r][1] = o[r][0] = o[r][1] = _mm512_setzero_ps();
            int p = 0;
            for (; p + 2 <= d; p += 2) {
                const float *k0 = kt + (long)p * cols + j0, *k1 = k0 + cols;
                __m512 a0 = _mm512_maskz_loadu_ps(m0, k0), a1 = _mm512_maskz_loadu_ps(m1, k0 + 16);
                __m512 b0 = _mm512_maskz_loadu_ps(m0, k1), b1 = _mm512_maskz_loadu_ps(m1, k1 + 16);
                for (int r = 0; r < 4; r++) {
                    __m512 x = _mm512_set1_ps(qr[r][p]), y = _mm512_set1_ps(qr[r][p + 1]);
                    e[r][0] = _mm512_fmadd_ps(x, a0, e[r][0]);
                    e[r][1] = _mm512_fmadd_ps(x, a1, e[r][1]);
                    o[r][0] = _mm512_fmadd_ps(y, b0, o[r][0]);
                    o[r][1] = _mm512_fmadd_ps(y, b1, o[r][1]);
                }
            }
            if (p < d) {
                const float *k0 = kt + (long)p * cols + j0;
                __m512 a0 = _mm512_maskz_loadu_ps(m0, k0), a1 = _mm512_maskz_loadu_ps(m1, k0 + 16);
                for (int r = 0; r < 4; r++) {
                    __m512 x = _mm512_set1_ps(qr[r][p]);
                    e[r][0] = _mm512_fmadd_ps(x, a0, e[r][0]);
                    e[r][1] = _mm512_fmadd_ps(x, a1, e[r][1]);
                }
            }
            for (int r = 0; r < 4 && i0 + r < rows; r++) {
                float *out = s + (long)(i0 + r) * lds + j0;
                _mm512_mask_storeu_ps(out, m0, _mm512_mul_ps(_mm512_add_ps(e[r][0], o[r][0]), sv));
                _mm512_mask_storeu_ps(out + 16, m1, _mm512_mul_ps(_mm512_add_ps(e[r][1], o[r][1]), sv));
            }
        }
    }
}

// AVX-512: 4 rows × 64 outputs of the accumulator in registers while the keys stream past.
__attribute__((target("avx512f,avx512bw,avx512vl,fma")))
static void accumulate_avx512(int rows, int cols, int dv, const float *restrict p, long ldp, const float *restrict v,
                              long ldv, float *restrict acc, long ldacc) {
    for (int i0 = 0; i0 < rows; i0 += 4) {
        int nr = rows - i0 < 4 ? rows - i0 : 4;
        const float *pr[4];
        for (int r = 0; r < 4; r++) pr[r] = p + (long)(i0 + (r < nr ? r : nr - 1)) * ldp;
        for (int e0 = 0; e0 < dv; e0 += 64) {
            __mmask16 m[4];
            for (int b = 0; b < 4; b++) {
                int left = dv - e0 - 16 * b;
                m[b] = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1u);
            }
            __m512 a[4][4];
            for (int r = 0; r < 4; r++)
                for (int b = 0; b < 4; b++)
                    a[r][b] = r < nr ? _mm512_maskz_loadu_ps(m[b], acc + (long)(i0 + r) * ldacc + e0 + 16 * b) : _mm512_setzero_ps();
            for (int j = 0; nr == 1 && j < cols; j++) {
                // One row (a decoding step): the other three would repeat it.
                const float *row = v + (long)j * ldv + e0;
                __m512 x = _mm512_set1_ps(pr[0][j]);
                a[0][0] = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m[0], row), a[0][0]);
                a[0][1] = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m[1], row + 16), a[0][1]);
                a[0][2] = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m[2], row + 32), a[0][2]);
                a[0][3] = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m[3], row + 48), a[0][3]);
            }
            for (int j = 0; nr > 1 && j < cols; j++) {
                const float *row = v + (long)j * ldv + e0;
                __m512 w0 = _mm512_maskz_loadu_ps(m[0], row), w1 = _mm512_maskz_loadu_ps(m[1], row + 16);
                __m512 w2 = _mm512_maskz_loadu_ps(m[2], row + 32), w3 = _mm512_maskz_loadu_ps(m[3], row + 48);
                for (int r = 0; r < 4; r++) {
                    __m512 x = _mm512_set1_ps(pr[r][j]);
                    a[r][0] = _mm512_fmadd_ps(x, w0, a[r][0]);
                    a[r][1] = _mm512_fmadd_ps(x, w1, a[r][1]);
                    a[r][2] = _mm512_fmadd_ps(x, w2, a[r][2]);
                    a[r][3] = _mm512_fmadd_ps(x, w3, a[r][3]);
                }
            }
            for (int r = 0; r < nr; r++)
                for (int b = 0; b < 4; b++) _mm512_mask_storeu_ps(acc + (long)(i0 + r) * ldacc + e0 + 16 * b, m[b], a[r][b]);
        }
    }
}

__attribute__((target("avx2,fma")))
static void scores_avx2(int rows, int cols, int d, const float *restrict q, long ldq, const float *restrict k, long ldk,
                        float scale, float *restrict s, long lds, float *restrict kt) {
    KK_SCORES_BODY
}

__attribute__((target("avx2,fma")))
static void accumulate_avx2(int rows, int cols, int dv, const float *restrict p, long ldp, const float *restrict v,
                            long ldv, float *restrict acc, long ldacc) {
    KK_ACCUMULATE_BODY
}
#endif

static void scores_scalar(int rows, int cols, int d, const float *restrict q, long ldq, const float *restrict k, long ldk,
                          float scale, float *restrict s, long lds, float *restrict kt) {
    KK_SCORES_BODY
}

static void accumulate_scalar(int rows, int cols, int dv, const float *restrict p, long ldp, const float *restrict v,
                              long ldv, float *restrict acc, long ldacc) {
    KK_ACCUMULATE_BODY
}

void kk_attention_scores(int rows, int cols, int d, const float *q, long ldq, const float *k, long ldk,
                         float scale, float *s, long lds, float *kt) {
#if KK_X86
    int isa = kk_active_isa();
    if (isa >= KK_ISA_AVX512) { scores_avx512(rows, cols, d, q, ldq, k, ldk, scale, s, lds, kt); return; }
    if (isa >= KK_ISA_AVX2) { scores_avx2(rows, cols, d, q, ldq, k, ldk, scale, s, lds, kt); return; }
#endif
    scores_scalar(rows, cols, d, q, ldq, k, ldk, scale, s, lds, kt);
}

void kk_attention_accumulate(int rows, int cols, int dv, const float *p, long ldp, const float *v, long ldv,
                             float *acc, long ldacc) {
#if KK_X86
    int isa = kk_active_isa();
    if (isa >= KK_ISA_AVX512) { accumulate_avx512(rows, cols, dv, p, ldp, v, ldv, acc, ldacc); return; }
    if (isa >= KK_ISA_AVX2) { accumulate_avx2(rows, cols, dv, p, ldp, v, ldv, acc, ldacc); return; }
#endif
    accumulate_scalar(rows, cols, dv, p, ldp, v, ldv, acc, ldacc);
}

// MARK: oneDNN

#if KK_DNNL
static dnnl_engine_t engine = NULL;
static dnnl_stream_t stream = NULL;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void make_engine(void) {
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) { engine = NULL; return; }
    if (dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(engine);
        engine = NULL;
        stream = NULL;
    }
}

struct kk_matmul {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t primitive;
    dnnl_memory_t a, b, c, bias;
};

int kk_dnnl_available(void) {
    pthread_once(&engine_once, make_engine);
    return engine != NULL;
}

static dnnl_data_type_t dnnl_type(int t) { return t == KK_BF16 ? dnnl_bf16 : dnnl_f32; }

kk_matmul *kk_matmul_create(long m, long n, long k, int a_type, int b_type, int trans_a, int trans_b,
                            int with_bias, long lda, long ldb, long ldc, int *status) {
    *status = dnnl_runtime_error;
    if (!kk_dnnl_available()) return NULL;
    dnnl_memory_desc_t a_md, b_md, c_md, bias_md;
    dnnl_dims_t a_dims = {m, k}, b_dims = {k, n}, c_dims = {m, n}, bias_dims = {1, n}, bias_strides = {n, 1};
    dnnl_dims_t a_strides = {trans_a ? 1 : lda, trans_a ? lda : 1};
    dnnl_dims_t b_strides = {trans_b ? 1 : ldb, trans_b ? ldb : 1};
    dnnl_dims_t c_strides = {ldc, 1};
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_strides(&a_md, 2, a_dims, dnnl_type(a_type), a_strides)) != dnnl_success ||
        (s = dnnl_memory_desc_init_by_strides(&b_md, 2, b_dims, dnnl_type(b_type), b_strides)) != dnnl_success ||
        (s = dnnl_memory_desc_init_by_strides(&c_md, 2, c_dims, dnnl_f32, c_strides)) != dnnl_success ||
        (s = dnnl_memory_desc_init_by_strides(&bias_md, 2, bias_dims, dnnl_f32, bias_strides)) != dnnl_success) {
        *status = s;
        return NULL;
    }
    dnnl_matmul_desc_t desc;
    if ((s = dnnl_matmul_desc_init(&desc, &a_md, &b_md, with_bias ? &bias_md : NULL, &c_md)) != dnnl_success) { *status = s; return NULL; }
    kk_matmul *p = calloc(1, sizeof(kk_matmul));
    if (!p) return NULL;
    if ((s = dnnl_primitive_desc_create(&p->pd, &desc, NULL, engine, NULL)) != dnnl_success) {
        free(p);
        *status = s;
        return NULL;
    }
    if ((s = dnnl_primitive_create(&p->primitive, p->pd)) != dnnl_success ||
        (s = dnnl_memory_create(&p->a, &a_md, engine, DNNL_MEMORY_NONE)) != dnnl_success ||
        (s = dnnl_memory_create(&p->b, &b_md, engine, DNNL_MEMORY_NONE)) != dnnl_success ||
        (s = dnnl_memory_create(&p->c, &c_md, engine, DNNL_MEMORY_NONE)) != dnnl_success ||
        (with_bias && (s = dnnl_memory_create(&p->bias, &bias_md, engine, DNNL_MEMORY_NONE)) != dnnl_success)) {
        kk_matmul_destroy(p);
        *status = s;
        return NULL;
    }
    *status = dnnl_success;
    return p;
}

static int (*omp_get)(void) = NULL;
static void (*omp_set)(int) = NULL;
static int wanted_threads = 0;
static pthread_once_t omp_once = PTHREAD_ONCE_INIT;

static void find_omp(void) {
    // oneDNN's OpenMP runtime comes with libdnnl; look its functions up there rather than link
    // libgomp's development files.
    omp_get = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_max_threads");
    omp_set = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    if (!omp_get || !omp_set) omp_get = NULL, omp_set = NULL;
}

int kk_matmul_run(kk_matmul *p, const void *a, const void *b, float *c, const float *bias) {
    dnnl_status_t s;
    // OpenMP's thread count is a per-thread setting: apply the process-wide one on whichever thread
    // runs the product (the server's scheduler is not the main thread).
    if (wanted_threads > 0 && omp_set && omp_get() != wanted_threads) omp_set(wanted_threads);
    kk_pool_quiesce();  // our spinning workers would hold cores oneDNN's threads are about to use
    if ((s = dnnl_memory_set_data_handle(p->a, (void *)a)) != dnnl_success) return s;
    if ((s = dnnl_memory_set_data_handle(p->b, (void *)b)) != dnnl_success) return s;
    if ((s = dnnl_memory_set_data_handle(p->c, c)) != dnnl_success) return s;
    if ((p->bias != NULL) != (bias != NULL)) return dnnl_invalid_arguments;
    if (p->bias && (s = dnnl_memory_set_data_handle(p->bias, (void *)bias)) != dnnl_success) return s;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->a}, {DNNL_ARG_WEIGHTS, p->b}, {DNNL_ARG_DST, p->c}, {DNNL_ARG_BIAS, p->bias}};
    if ((s = dnnl_primitive_execute(p->primitive, stream, p->bias ? 4 : 3, args)) != dnnl_success) return s;
    return dnnl_stream_wait(stream);
}

void kk_matmul_destroy(kk_matmul *p) {
    if (!p) return;
    if (p->a) dnnl_memory_destroy(p->a);
    if (p->b) dnnl_memory_destroy(p->b);
    if (p->c) dnnl_memory_destroy(p->c);
    if (p->bias) dnnl_memory_destroy(p->bias);
    if (p->primitive) dnnl_primitive_destroy(p->primitive);
    if (p->pd) dnnl_primitive_desc_destroy(p->pd);
    free(p);
}

const char *kk_matmul_implementation(kk_matmul *p) {
    const char *name = NULL;
    if (dnnl_primitive_desc_query(p->pd, dnnl_query_impl_info_str, 0, &name) != dnnl_success || !name) return "unknown";
    return name;
}

int kk_set_dnnl_threads(int n) {
    pthread_once(&omp_once, find_omp);
    if (!omp_set) return 0;
    int previous = wanted_threads > 0 ? wanted_threads : omp_get();
    wanted_threads = n < 1 ? 1 : n;
    omp_set(wanted_threads);
    return previous;
}
#else
struct kk_matmul {
    int unused;
};
int kk_dnnl_available(void) { return 0; }
kk_matmul *kk_matmul_create(long m, long n, long k, int a_type, int b_type, int trans_a, int trans_b,
                            int with_bias, long lda, long ldb, long ldc, int *status) {
    (void)m; (void)n; (void)k; (void)a_type; (void)b_type; (void)trans_a; (void)trans_b; (void)with_bias;
    (void)lda; (void)ldb; (void)ldc;
    *status = -1;
    return NULL;
}
int kk_matmul_run(kk_matmul *p, const void *a, const void *b, float *c, const float *bias) {
    (void)p; (void)a; (void)b; (void)c; (void)bias;
    return -1;
}
void kk_matmul_destroy(kk_matmul *p) { (void)p; }
const char *kk_matmul_implementation(kk_matmul *p) { (void)p; return "none"; }
int kk_set_dnnl_threads(int n) { (void)n; return 0; }
#endif
