// A small C layer over MPI for KosmosMPI. MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM) are
// macros that differ between Open MPI and MPICH and do not import into Swift, so collectives are
// wrapped here with plain C types. Every function returns MPI_SUCCESS (0) or an MPI error code
// (kosmos_mpi_error_string describes it); counts above INT_MAX are split into several calls.
// Built without mpi.h (the default build), every function fails with KOSMOS_MPI_UNAVAILABLE.
#ifndef KOSMOS_MPI_H
#define KOSMOS_MPI_H

#define KOSMOS_MPI_UNAVAILABLE (-1000)

int kosmos_mpi_available(void);
/// MPI_Init_thread (funneled: only the thread that initialised calls MPI) and MPI_ERRORS_RETURN on
/// MPI_COMM_WORLD, so failures come back as codes instead of killing the process silently.
int kosmos_mpi_init(int *rank, int *size);
int kosmos_mpi_finalize(void);
void kosmos_mpi_abort(int code);
int kosmos_mpi_allreduce_sum_float(float *buffer, long count);
int kosmos_mpi_allreduce_sum_double(double *buffer, long count);
/// input: size × block floats; output: block floats (this rank's block, summed).
int kosmos_mpi_reduce_scatter_sum_float(const float *input, float *output, long block);
/// input: block floats; output: size × block floats.
int kosmos_mpi_allgather_float(const float *input, float *output, long block);
int kosmos_mpi_allgather_int(int value, int *values);
int kosmos_mpi_allgatherv_bytes(const void *input, int count, void *output, const int *counts, const int *displacements);
int kosmos_mpi_broadcast_bytes(void *buffer, long count, int root);
int kosmos_mpi_barrier(void);
void kosmos_mpi_error_string(int code, char *out, int length);
void kosmos_mpi_library_version(char *out, int length);
/// On SIGTERM/SIGINT (mpirun stopping the job after another rank failed), write `message` to
/// stderr and exit with 128 + signal: async-signal-safe, the message is copied now.
void kosmos_mpi_install_termination_message(const char *message);

#endif
