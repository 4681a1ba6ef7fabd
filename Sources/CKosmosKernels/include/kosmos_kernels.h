// Kernels that need the CPU's own instructions (AVX-512 BF16, F16C) or a C library (oneDNN).
// Each hand-written path has a scalar twin the tests compare it with; the fastest the CPU runs is
// chosen at run time from cpuid, and `kk_set_isa_limit` can hold the choice down (for tests).
#ifndef KOSMOS_KERNELS_H
#define KOSMOS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Instruction-set levels, lowest first.
#define KK_ISA_SCALAR 0
#define KK_ISA_AVX2 1        // AVX2 + FMA + F16C
#define KK_ISA_AVX512 2      // AVX-512 F/BW/VL (+ F16C)
#define KK_ISA_AVX512_BF16 3 // and AVX512-BF16 (native bf16 conversion and dot products)

/// The best level this CPU supports.
int kk_cpu_isa(void);
/// The level the kernels use: min(kk_cpu_isa(), limit). Limit defaults to the highest.
int kk_active_isa(void);
void kk_set_isa_limit(int level);
/// A short name of a level ("scalar", "avx2", "avx512", "avx512_bf16").
const char *kk_isa_name(int level);

// A pool of persistent worker threads for short parallel jobs (pool.c). Workers spin for a while
// after each job (so back-to-back jobs start without a system call), then sleep.
typedef void (*kk_pool_task)(void *context, long chunk);
/// Starts `threads - 1` workers once (later calls change nothing); the threads a job can use
/// (workers + the caller).
int kk_pool_start(int threads);
/// Runs task(context, c) for c < chunks, chunk 0 on the calling thread and chunk c on worker c - 1,
/// and returns 0 when all are done. Returns -1 without running anything when the pool cannot take
/// the job (called from inside a pool job, another job running, or more chunks than threads).
int kk_pool_run(int chunks, kk_pool_task task, void *context);
/// Runs task(context, c) for c < chunks on `threads` threads (the caller and threads - 1 workers),
/// each thread claiming the next unclaimed chunk when it finishes one, so a thread slowed by other
/// work on its core takes fewer chunks. Which thread runs a chunk varies; what a chunk computes
/// must not depend on it. Returns as kk_pool_run (-1: nothing ran).
int kk_pool_run_claimed(int threads, long chunks, kk_pool_task task, void *context);
/// How long an idle worker spins before it sleeps (nanoseconds; default 200 µs; 0: sleep at once).
void kk_pool_set_spin(long nanoseconds);
/// Spinning workers go to sleep now rather than at the end of their spin (called before handing
/// the cores to another library's threads: oneDNN's products call it).
void kk_pool_quiesce(void);
/// How many times a worker has gone to sleep since the process started (tests, diagnostics).
long kk_pool_sleeps(void);

/// The sum of n floats read as fast as the CPU streams memory (eight 512-bit accumulators where
/// there is AVX-512): what the benchmarks' read bandwidth is measured with.
float kk_read_sum(const float *p, size_t n);

/// Round to nearest even; every NaN becomes 0x7FC0 (as PyTorch's c10::BFloat16).
void kk_bf16_from_f32(const float *src, uint16_t *dst, size_t n);
void kk_f32_from_bf16(const uint16_t *src, float *dst, size_t n);
void kk_f16_from_f32(const float *src, uint16_t *dst, size_t n);
void kk_f32_from_f16(const uint16_t *src, float *dst, size_t n);

/// c[i*ldc + j] = sum_p a[i*lda + p] * w[j*ldw + p], for rows i < m and columns j0 <= j < j1, with a
/// float32 and w stored as bfloat16 (`_bf16`) or float16 (`_f16`), each weight widened exactly to
/// float32 and accumulated in float32. Meant for few rows (decoding): w is read once from memory.
/// The summation order depends on the ISA level only, never on j0/j1 (so not on the thread split).
void kk_rows_times_weight_bf16(int m, long j0, long j1, long k, const float *a, long lda,
                               const uint16_t *w, long ldw, float *c, long ldc);
void kk_rows_times_weight_f16(int m, long j0, long j1, long k, const float *a, long lda,
                              const uint16_t *w, long ldw, float *c, long ldc);

// Quantized weights [rows × k] (docs/model-format.md): q8 (int8 levels, a float16 scale per group
// of columns: w = q·d) and q4 (4-bit levels 0-15, a float16 scale and minimum per group:
// w = n·d + m, fused, one rounding). Groups are a multiple of 32 columns; a q4 row is packed in
// 32-column blocks of 16 bytes, byte i holding column i (low nibble) and column i + 16 (high).
// Scales (and minimums) are [rows × k/group], row-major.
#define KK_Q_BLOCK 32
#define KK_Q_BAD_LAYOUT 1      // group not a positive multiple of 32 or k not a multiple of group
#define KK_Q_NOT_FINITE 2      // a weight is NaN or infinite
#define KK_Q_SCALE_OVERFLOW 3  // a scale or minimum does not fit float16
/// Quantize row-major float32 weights; 0 or one of the codes above. The definition of the formats.
int kk_q8_quantize(long rows, long k, const float *w, long group, int8_t *q, uint16_t *scales);
int kk_q4_quantize(long rows, long k, const float *w, long group, uint8_t *q, uint16_t *scales, uint16_t *mins);
/// Rows j0 ..< j1 dequantized into dst (those rows only, k apart), float32 or bfloat16 (rounded).
void kk_q8_dequantize(long j0, long j1, long k, const int8_t *q, const uint16_t *scales, long group, float *dst);
void kk_q4_dequantize(long j0, long j1, long k, const uint8_t *q, const uint16_t *scales, const uint16_t *mins,
                      long group, float *dst);
void kk_q8_dequantize_bf16(long j0, long j1, long k, const int8_t *q, const uint16_t *scales, long group, uint16_t *dst);
void kk_q4_dequantize_bf16(long j0, long j1, long k, const uint8_t *q, const uint16_t *scales, const uint16_t *mins,
                           long group, uint16_t *dst);
/// c[i*ldc + j] ≈ sum_p a[i*lda + p] * w[j][p] for rows i < m, columns j0 <= j < j1, the weight read
/// once from memory (decoding). The activations are quantized per 32-column block (int8, scale
/// max|a|/127) and each block's products are exact integer dot products; quantized.c defines the
/// float order, which every ISA level follows bit for bit, whatever j0/j1 and the other rows.
void kk_q8_rows_times_weight(int m, long j0, long j1, long k, const float *a, long lda, const int8_t *q,
                             const uint16_t *scales, long group, float *c, long ldc);
void kk_q4_rows_times_weight(int m, long j0, long j1, long k, const float *a, long lda, const uint8_t *q,
                             const uint16_t *scales, const uint16_t *mins, long group, float *c, long ldc);
/// The same products in two steps, so that threads sharing one product quantize its activations
/// once: `kk_q_activations_make` quantizes m rows for `bits` (8 or 4; q4's also feed q8) and group
/// (NULL when out of memory or for a bad layout); then each thread takes its columns j0 ..< j1.
/// Bit for bit the results of the one-step functions.
typedef struct kk_q_activations kk_q_activations;
kk_q_activations *kk_q_activations_make(int bits, int m, long k, const float *a, long lda, long group);
void kk_q_activations_free(kk_q_activations *x);
void kk_q8_rows_times_prepared(long j0, long j1, const kk_q_activations *x, const int8_t *q, const uint16_t *scales,
                               float *c, long ldc);
void kk_q4_rows_times_prepared(long j0, long j1, const kk_q_activations *x, const uint8_t *q, const uint16_t *scales,
                               const uint16_t *mins, float *c, long ldc);

/// Attention tiles (the fused kernel's inner products), float32:
/// s[i*lds + j] = scale * sum_d q[i*ldq + d] * k[j*ldk + d] for i < rows, j < cols; `kt` is scratch
/// of d * cols floats (the key block transposed, so the products are broadcasts and FMAs).
void kk_attention_scores(int rows, int cols, int d, const float *q, long ldq, const float *k, long ldk,
                         float scale, float *s, long lds, float *kt);
/// acc[i*ldacc + e] += sum_j p[i*ldp + j] * v[j*ldv + e] for i < rows, e < dv, j < cols.
void kk_attention_accumulate(int rows, int cols, int dv, const float *p, long ldp, const float *v, long ldv,
                             float *acc, long ldacc);

// oneDNN matrix products (x86-64 Linux with libdnnl). All functions exist everywhere; without
// oneDNN `kk_dnnl_available` is 0 and `kk_matmul_create` returns NULL.
int kk_dnnl_available(void);
/// Data types of operands.
#define KK_F32 0
#define KK_BF16 1
typedef struct kk_matmul kk_matmul;
/// A primitive for C[m×n] (f32, leading dimension ldc) = op(A)·op(B) (+ a float32 bias of n
/// values added to every row when with_bias), A of type a_type (m×k, or k×m read transposed) and
/// B of type b_type (k×n, or n×k read transposed), row-major with the given leading dimensions.
/// NULL when oneDNN cannot make it (then `status` says why).
kk_matmul *kk_matmul_create(long m, long n, long k, int a_type, int b_type, int trans_a, int trans_b,
                            int with_bias, long lda, long ldb, long ldc, int *status);
/// Runs it (bias NULL exactly when made without); 0 on success, the oneDNN status otherwise.
int kk_matmul_run(kk_matmul *p, const void *a, const void *b, float *c, const float *bias);
void kk_matmul_destroy(kk_matmul *p);
/// The implementation oneDNN chose, e.g. "brg:avx512_core_bf16" (valid while p lives).
const char *kk_matmul_implementation(kk_matmul *p);
/// Threads of oneDNN's OpenMP runtime (no effect without oneDNN). Returns the previous count, or 0.
int kk_set_dnnl_threads(int n);

#ifdef __cplusplus
}
#endif
#endif
