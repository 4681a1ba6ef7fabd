// The MPI C API (Open MPI or MPICH); only CMPISupport includes it, and only when MPI is installed.
#include <mpi.h>
