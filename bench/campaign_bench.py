"""Campaign scale: runs per second for 1 and 2 local Dask workers on the same
spec, as a ratio, and the overhead of Dask against a plain loop.

The workload is campaigns/resets-and-storage.toml, the same RUNS runs (seed
1) every time: generate, run, judge, make the row; no shrinking, no files.
A plain loop in this process is the baseline. Each Dask figure leaves out
the cluster's start-up (printed apart) and warms every worker first (its
imports), so it is the steady rate an overnight campaign sees. On a machine
shared with other work the ratio is what to read, not the absolute rates.
Figures only: nothing here passes or fails.
"""
import os
import sys
import time

from emulator.campaign import spec as S
from emulator.campaign.run import run_index

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "campaigns", "resets-and-storage.toml")
RUNS = int(os.environ.get("CAMPAIGN_BENCH_RUNS", "40"))


def plain(spec):
    t0 = time.perf_counter()
    for i in range(RUNS):
        run_index(spec, 1, i)
    return time.perf_counter() - t0


def on_dask(spec, workers):
    from distributed import Client, LocalCluster, as_completed
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=40)
    client = Client(cluster)
    start = time.perf_counter() - t0
    try:
        sf = client.scatter([spec], broadcast=True)[0]
        # warm each worker: its first run pays for the imports
        client.gather([client.submit(run_index, sf, 99, i, pure=False, workers=[w])
                       for i, w in enumerate(client.scheduler_info()["workers"])])
        best = None
        for _ in range(2):              # the better of two on a shared machine, as for the loop
            t0 = time.perf_counter()
            futs = [client.submit(run_index, sf, 1, i, pure=False) for i in range(RUNS)]
            for fu in as_completed(futs):
                fu.result()
            took = time.perf_counter() - t0
            best = took if best is None else min(best, took)
        return start, best
    finally:
        client.close()
        cluster.close()


def main():
    spec = S.load(SPEC)
    run_index(spec, 99, 0)                  # this process's imports, too
    loop = plain(spec)
    start1, one = on_dask(spec, 1)
    start2, two = on_dask(spec, 2)
    loop = min(loop, plain(spec))           # the loop again after: the better of two on a shared machine
    print("campaign bench: %s, %d runs (%d cores here)" % (os.path.relpath(SPEC, ROOT), RUNS, os.cpu_count() or 1))
    print("  plain loop, this process   %6.1f runs/s  (%.1f ms a run)" % (RUNS / loop, 1000 * loop / RUNS))
    print("  Dask, 1 worker             %6.1f runs/s  (cluster start %.1f s, not counted)" % (RUNS / one, start1))
    print("  Dask, 2 workers            %6.1f runs/s  (cluster start %.1f s, not counted)" % (RUNS / two, start2))
    print("  2 workers / 1 worker       %6.2f x" % (one / two))
    print("  Dask overhead (1 worker against the plain loop): %+.0f %%, %+.1f ms a run"
          % (100 * (one - loop) / loop, 1000 * (one - loop) / RUNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
