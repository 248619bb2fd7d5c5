/*
 * mpi_allreduce: the Open MPI side of `dmlrun bench compare`.
 *
 * Sweeps MPI_Allreduce (float32, MPI_SUM, out of place) over the same sizes
 * as `dmlrun bench allreduce`: from MIN_BYTES, multiplying by FACTOR, up to
 * MAX_BYTES, each rounded down to whole elements (at least one).
 *
 *   mpicc -O2 -o mpi_allreduce mpi_allreduce.c
 *   mpirun -np N mpi_allreduce MIN_BYTES MAX_BYTES FACTOR ITERS WARMUP
 *
 * Per size: WARMUP untimed calls, MPI_Barrier, ITERS timed calls; the time is
 * the mean per call of the slowest rank. Rank r sends r+1 everywhere, so
 * every element of the result must be exactly n(n+1)/2. Rank 0 prints one
 * line per size (lines starting with '#' are comments):
 *
 *   bytes count time_us algbw_GBs busbw_GBs wrong
 *
 * with algbw = bytes/time, busbw = algbw * 2(n-1)/n (GB = 1e9 bytes) and
 * wrong = elements, summed over ranks, that differ from n(n+1)/2.
 */
#include <errno.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

/* arg parses argv[i] as a whole number in [lo, hi]; on error rank 0 says why. */
static long long arg(int rank, char **argv, int i, const char *name, long long lo, long long hi) {
  char *end;
  errno = 0;
  long long v = strtoll(argv[i], &end, 10);
  if (errno != 0 || *end != '\0' || end == argv[i] || v < lo || v > hi) {
    if (rank == 0)
      fprintf(stderr, "mpi_allreduce: %s = %s: want a whole number from %lld to %lld\n", name, argv[i], lo, hi);
    MPI_Finalize();
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, n;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  if (argc != 6) {
    if (rank == 0)
      fprintf(stderr, "usage: mpi_allreduce MIN_BYTES MAX_BYTES FACTOR ITERS WARMUP\n");
    MPI_Finalize();
    return 2;
  }
  const long long max_elems = 1LL << 30; /* MPI counts are ints; 4 GiB of float32 */
  long long minb = arg(rank, argv, 1, "MIN_BYTES", 1, 4 * max_elems);
  long long maxb = arg(rank, argv, 2, "MAX_BYTES", minb, 4 * max_elems);
  long long factor = arg(rank, argv, 3, "FACTOR", 2, 1 << 20);
  long long iters = arg(rank, argv, 4, "ITERS", 1, 1 << 30);
  long long warmup = arg(rank, argv, 5, "WARMUP", 0, 1 << 30);

  long long maxc = maxb / 4 > 0 ? maxb / 4 : 1;
  float *send = malloc(maxc * sizeof(float)), *recv = malloc(maxc * sizeof(float));
  if (send == NULL || recv == NULL) {
    fprintf(stderr, "mpi_allreduce: rank %d: cannot allocate 2 x %lld bytes\n", rank, maxc * 4);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  for (long long i = 0; i < maxc; i++) send[i] = (float)(rank + 1);
  const float want = (float)n * (float)(n + 1) / 2.0f;

  if (rank == 0) {
    printf("# Open MPI allreduce: %d ranks, float32, sum, out of place, %lld iterations after %lld warm-up\n", n, iters, warmup);
    printf("#%11s %12s %12s %12s %12s %8s\n", "bytes", "count", "time_us", "algbw_GBs", "busbw_GBs", "wrong");
    fflush(stdout);
  }
  for (long long b = minb; b <= maxb; b *= factor) {
    long long count = b / 4 > 0 ? b / 4 : 1;
    for (long long i = 0; i < count; i++) recv[i] = -1.0f; /* a stale result cannot pass the check */
    for (long long w = 0; w < warmup; w++)
      MPI_Allreduce(send, recv, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (long long it = 0; it < iters; it++)
      MPI_Allreduce(send, recv, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double dt = (MPI_Wtime() - t0) / (double)iters, slowest;
    MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);

    long long wrong = 0, wrong_all;
    for (long long i = 0; i < count; i++) wrong += recv[i] != want;
    MPI_Allreduce(&wrong, &wrong_all, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);

    double bytes = (double)count * 4.0, alg = bytes / slowest / 1e9, bus = alg * 2.0 * (n - 1) / n;
    if (rank == 0) {
      printf("%12lld %12lld %12.3f %12.6g %12.6g %8lld\n", count * 4, count, slowest * 1e6, alg, bus, wrong_all);
      fflush(stdout);
    }
  }
  free(send);
  free(recv);
  MPI_Finalize();
  return 0;
}
