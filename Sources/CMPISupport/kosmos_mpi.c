#include "kosmos_mpi.h"
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static char termination_message[1024];
static size_t termination_length = 0;

static void on_termination(int signal_number) {
    if (termination_length > 0) {
        ssize_t ignored = write(2, termination_message, termination_length);
        (void)ignored;
    }
    _exit(128 + signal_number);
}

void kosmos_mpi_install_termination_message(const char *message) {
    size_t n = strlen(message);
    if (n > sizeof(termination_message) - 1) n = sizeof(termination_message) - 1;
    memcpy(termination_message, message, n);
    termination_length = n;
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_termination;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
}

#if __has_include(<mpi.h>)
#include <mpi.h>

// Elements per call, so that every count fits MPI's int.
#define CHUNK (1L << 30)

int kosmos_mpi_available(void) { return 1; }

int kosmos_mpi_init(int *rank, int *size) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return rc;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rc = MPI_Comm_rank(MPI_COMM_WORLD, rank);
    if (rc != MPI_SUCCESS) return rc;
    return MPI_Comm_size(MPI_COMM_WORLD, size);
}

int kosmos_mpi_finalize(void) { return MPI_Finalize(); }

void kosmos_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

int kosmos_mpi_allreduce_sum_float(float *buffer, long count) {
    for (long at = 0; at < count; at += CHUNK) {
        long n = count - at < CHUNK ? count - at : CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, buffer + at, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
}

int kosmos_mpi_allreduce_sum_double(double *buffer, long count) {
    for (long at = 0; at < count; at += CHUNK) {
        long n = count - at < CHUNK ? count - at : CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, buffer + at, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
}

int kosmos_mpi_reduce_scatter_sum_float(const float *input, float *output, long block) {
    if (block > INT_MAX) return MPI_ERR_COUNT;
    return MPI_Reduce_scatter_block(input, output, (int)block, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

int kosmos_mpi_allgather_float(const float *input, float *output, long block) {
    if (block > INT_MAX) return MPI_ERR_COUNT;
    return MPI_Allgather(input, (int)block, MPI_FLOAT, output, (int)block, MPI_FLOAT, MPI_COMM_WORLD);
}

int kosmos_mpi_allgather_int(int value, int *values) {
    return MPI_Allgather(&value, 1, MPI_INT, values, 1, MPI_INT, MPI_COMM_WORLD);
}

int kosmos_mpi_allgatherv_bytes(const void *input, int count, void *output, const int *counts, const int *displacements) {
    return MPI_Allgatherv(input, count, MPI_BYTE, output, counts, displacements, MPI_BYTE, MPI_COMM_WORLD);
}

int kosmos_mpi_broadcast_bytes(void *buffer, long count, int root) {
    for (long at = 0; at < count; at += CHUNK) {
        long n = count - at < CHUNK ? count - at : CHUNK;
        int rc = MPI_Bcast((char *)buffer + at, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
}

int kosmos_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

void kosmos_mpi_error_string(int code, char *out, int length) {
    if (length <= 0) return;
    if (code == KOSMOS_MPI_UNAVAILABLE) { strncpy(out, "built without mpi.h", (size_t)length - 1); out[length - 1] = 0; return; }
    char text[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(code, text, &n) != MPI_SUCCESS) { strncpy(text, "unknown MPI error", sizeof(text) - 1); text[sizeof(text) - 1] = 0; }
    strncpy(out, text, (size_t)length - 1);
    out[length - 1] = 0;
}

void kosmos_mpi_library_version(char *out, int length) {
    if (length <= 0) return;
    char text[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    MPI_Get_library_version(text, &n);
    // The first line is enough ("Open MPI v4.1.4, package: ...").
    char *newline = strchr(text, '\n');
    if (newline) *newline = 0;
    char *comma = strchr(text, ',');
    if (comma) *comma = 0;
    strncpy(out, text, (size_t)length - 1);
    out[length - 1] = 0;
}

#else

int kosmos_mpi_available(void) { return 0; }
int kosmos_mpi_init(int *rank, int *size) { (void)rank; (void)size; return KOSMOS_MPI_UNAVAILABLE; }
int kosmos_mpi_finalize(void) { return KOSMOS_MPI_UNAVAILABLE; }
void kosmos_mpi_abort(int code) { _exit(code); }
int kosmos_mpi_allreduce_sum_float(float *b, long c) { (void)b; (void)c; return KOSMOS_MPI_UNAVAILABLE; }
int kosmos_mpi_allreduce_sum_double(double *b, long c) { (void)b; (void)c; return KOSMOS_MPI_UNAVAILABLE; }
int kosmos_mpi_reduce_scatter_sum_float(const float *i, float *o, long b) { (void)i; (void)o; (void)b; return KOSMOS_MPI_UNAVAILABLE; }
int kosmos_mpi_allgather_float(const float *i, float *o, long b) { (void)i; (void)o; (void)b; return KOSMOS_MPI_UNAVAILABLE; }
int kosmos_mpi_allgather_int(int v, int *vs) { (void)v; (void)vs; return KOSMOS_MPI_UNAVAILABLE; }
int kosmos_mpi_allgatherv_bytes(const void *i, int c, void *o, const int *cs, const int *d) { (void)i; (void)c; (void)o; (void)cs; (void)d; return KOSMOS_MPI_UNAVAILABLE; }
int kosmos_mpi_broadcast_bytes(void *b, long c, int r) { (void)b; (void)c; (void)r; return KOSMOS_MPI_UNAVAILABLE; }
int kosmos_mpi_barrier(void) { return KOSMOS_MPI_UNAVAILABLE; }
void kosmos_mpi_error_string(int code, char *out, int length) { (void)code; if (length > 0) { strncpy(out, "built without mpi.h", (size_t)length - 1); out[length - 1] = 0; } }
void kosmos_mpi_library_version(char *out, int length) { if (length > 0) out[0] = 0; }

#endif
