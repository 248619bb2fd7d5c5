"""gloo_allreduce: the torch.distributed (gloo backend) side of `dmlrun bench compare`.

Sweeps dist.all_reduce (float32, sum) over the same sizes as `dmlrun bench
allreduce`: from MIN_BYTES, multiplying by FACTOR, up to MAX_BYTES, each
rounded down to whole elements (at least one).

    /usr/bin/python3 gloo_allreduce.py NPROC MIN_BYTES MAX_BYTES FACTOR ITERS WARMUP

NPROC processes are spawned on 127.0.0.1 (torch.multiprocessing, one torch
thread each) and rendezvous on a free port. gloo reduces in place, so repeated
calls on the same tensor would multiply its values by n each time (and
overflow float32 after a few dozen calls); so per size one untimed call on
rank+1 values is checked (every element must be n(n+1)/2), then WARMUP
untimed and ITERS timed calls reduce a tensor of zeros, which must stay zero.
The time is the mean per call of the slowest rank. Rank 0 prints one line per
size (lines starting with '#' are comments):

    bytes count time_us algbw_GBs busbw_GBs wrong

with algbw = bytes/time, busbw = algbw * 2(n-1)/n (GB = 1e9 bytes) and wrong =
elements, summed over ranks, that were not exact.
"""
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def sizes(minb, maxb, factor):
    b = minb
    while b <= maxb:
        yield max(1, b // 4)
        b *= factor


def worker(rank, n, port, minb, maxb, factor, iters, warmup):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=n)
    if rank == 0:
        print(f"# torch {torch.__version__} gloo allreduce: {n} ranks, float32, sum, in place, "
              f"{iters} iterations after {warmup} warm-up", flush=True)
        print(f"#{'bytes':>11} {'count':>12} {'time_us':>12} {'algbw_GBs':>12} {'busbw_GBs':>12} {'wrong':>8}", flush=True)
    want = n * (n + 1) / 2
    for count in sizes(minb, maxb, factor):
        check = torch.full((count,), float(rank + 1), dtype=torch.float32)
        dist.all_reduce(check)
        t = torch.zeros(count, dtype=torch.float32)
        for _ in range(warmup):
            dist.all_reduce(t)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(iters):
            dist.all_reduce(t)
        dt = (time.perf_counter() - t0) / iters

        slowest = torch.tensor([dt], dtype=torch.float64)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        wrong = torch.tensor([int(((check != want) | (t != 0)).sum())], dtype=torch.int64)
        dist.all_reduce(wrong)
        if rank == 0:
            dt, alg = slowest.item(), count * 4 / slowest.item() / 1e9
            print(f"{count * 4:12d} {count:12d} {dt * 1e6:12.3f} {alg:12.6g} {alg * 2 * (n - 1) / n:12.6g} "
                  f"{wrong.item():8d}", flush=True)
    dist.destroy_process_group()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv):
    names = ["NPROC", "MIN_BYTES", "MAX_BYTES", "FACTOR", "ITERS", "WARMUP"]
    if len(argv) != len(names):
        sys.exit("usage: gloo_allreduce.py " + " ".join(names))
    try:
        n, minb, maxb, factor, iters, warmup = (int(a) for a in argv)
    except ValueError:
        sys.exit(f"gloo_allreduce.py: arguments {argv}: want whole numbers {' '.join(names)}")
    for name, v, lo in zip(names, (n, minb, maxb, factor, iters, warmup), (1, 1, minb, 2, 1, 0)):
        if v < lo:
            sys.exit(f"gloo_allreduce.py: {name} = {v}: want at least {lo}")
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    mp.spawn(worker, args=(n, free_port(), minb, maxb, factor, iters, warmup), nprocs=n, join=True)


if __name__ == "__main__":
    main(sys.argv[1:])
