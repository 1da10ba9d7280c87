# Running a campaign: each run a task on a Dask cluster (a LocalCluster of
# one process per worker by default, or any scheduler by address), results
# streamed back as they finish, failures shrunk on the cluster too.
#
# DIR/runs.jsonl is the campaign's journal: one line per finished run, flushed
# as it comes, so Ctrl-C (or a lost machine) keeps every result so far and
# --resume DIR runs only what is missing. DIR/campaign-args.json holds what a
# resume needs (the spec, the seed, the number of runs, the runtime).
import json
import os
import shutil
import sys
import time

from emulator.campaign.generate import generate
from emulator.campaign.run import crash_row, run_index
from emulator.campaign.shrink import shrink_task, write_failure
from emulator.campaign.values import SpecError

SHRINK_PER_CHECK = 3       # failures shrunk per failing check (the rest are in runs.csv)


class Journal:
    def __init__(self, out):
        self.path = os.path.join(out, "runs.jsonl")
        self.rows = {}
        self.shrunk = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue        # a line cut short by a stop: that run is done again
                    if rec.get("kind") == "shrunk":
                        self.shrunk[rec["run"]] = rec
                    else:
                        self.rows[rec["run"]] = rec
        self.f = open(self.path, "a")

    def add(self, rec):
        self.f.write(json.dumps(rec) + "\n")
        self.f.flush()

    def close(self):
        self.f.close()


class Progress:
    """One line on stderr: runs done, failures, runs/s, ETA."""

    def __init__(self, total, done, stream=None, quiet=False):
        self.total, self.done0, self.done = total, done, done
        stream = stream or sys.stderr
        self.failures = 0
        self.t0 = time.perf_counter()
        self.stream, self.quiet = stream, quiet
        self.last = 0
        self.shown = None

    def rate(self):
        dt = time.perf_counter() - self.t0
        return (self.done - self.done0) / dt if dt > 0 else 0.0

    def line(self):
        r = self.rate()
        left = self.total - self.done
        eta = left / r if r > 0 else float("inf")
        eta_s = "--" if eta == float("inf") else "%dm%02ds" % divmod(int(eta), 60)
        return "campaign: %d/%d runs  %d failing  %.1f runs/s  ETA %s" % (self.done, self.total, self.failures, r, eta_s)

    def tick(self, force=False):
        now = time.perf_counter()
        if self.quiet or (not force and now - self.last < 0.5):
            return
        self.last = now
        if force and self.done == self.shown:
            return          # the last line already said it
        self.shown = self.done
        end = "\n" if force or not self.stream.isatty() else ""
        self.stream.write(("\r" if self.stream.isatty() else "") + self.line() + end)
        self.stream.flush()


def _save_args(out, spec_path, seed, runs, runtime):
    path = os.path.join(out, "campaign-args.json")
    keep = os.path.join(out, "spec.toml")
    if os.path.abspath(spec_path) != os.path.abspath(keep):
        shutil.copyfile(spec_path, keep)
    with open(path, "w") as f:
        json.dump({"spec": keep, "spec_given": spec_path, "seed": seed, "runs": runs, "runtime": runtime}, f, indent=1)


def load_args(out):
    with open(os.path.join(out, "campaign-args.json")) as f:
        return json.load(f)


class Campaign:
    """Everything one campaign run needs; run() with an executor of choice."""

    def __init__(self, spec, out, runs, seed, runtime="cpython", pump=None, quiet=False,
                 shrink_per_check=SHRINK_PER_CHECK, stream=None):
        self.spec, self.out, self.runs, self.seed = spec, out, runs, seed
        self.runtime, self.pump, self.quiet = runtime, pump, quiet
        self.shrink_per_check = shrink_per_check
        os.makedirs(os.path.join(out, "scenarios"), exist_ok=True)
        _save_args(out, spec["_path"], seed, runs, runtime)
        self.journal = Journal(out)
        self.pending = [i for i in range(runs) if i not in self.journal.rows]
        self.resumed = runs - len(self.pending)
        self.progress = Progress(runs, self.resumed, stream, quiet)
        self.progress.failures = sum(1 for r in self.journal.rows.values() if r["status"] == "fail")
        self.shrinking = {}        # check -> how many shrinks were started
        for rec in self.journal.shrunk.values():
            self.shrinking[rec["check"]] = self.shrinking.get(rec["check"], 0) + 1
        # failures of an earlier, stopped session whose shrink never came back: shrunk now
        self.reshrink = []
        for k in sorted(self.journal.rows):
            r = self.journal.rows[k]
            if r["status"] == "fail" and k not in self.journal.shrunk:
                check = r["failed"][0]
                path = os.path.join(out, "scenarios", r["name"] + ".toml")
                if self.shrinking.get(check, 0) < shrink_per_check and os.path.exists(path):
                    with open(path) as f:
                        self.reshrink.append((k, (r["name"], f.read(), check)))
                    self.shrinking[check] = self.shrinking.get(check, 0) + 1
        self.interrupted = False
        self.wall = 0.0
        self.workers = 0

    def took(self, row, text):
        """A run finished. -> the shrink to start (name, text, check) or None."""
        self.journal.rows[row["run"]] = row
        self.journal.add(row)
        with open(os.path.join(self.out, "scenarios", row["name"] + ".toml"), "w") as f:
            f.write(text)
        self.progress.done += 1
        if row["status"] != "fail":
            self.progress.tick()
            return None
        self.progress.failures += 1
        self.progress.tick()
        check = row["failed"][0]
        if self.shrinking.get(check, 0) >= self.shrink_per_check:
            return None
        self.shrinking[check] = self.shrinking.get(check, 0) + 1
        return row["name"], text, check

    def shrunk(self, res, run_no):
        row = self.journal.rows[run_no]
        path = write_failure(self.out, res, row)
        rec = {"kind": "shrunk", "run": run_no, "check": res["check"], "file": path, "events": res["events"],
               "tries": res["tries"], "detail": res["detail"]}
        self.journal.shrunk[run_no] = rec
        self.journal.add(rec)

    # ---------------------------------------------------------------- executors
    def run_local(self):
        """A plain loop in this process (--workers 0): no Dask, the baseline."""
        t0 = time.perf_counter()
        self.workers = 0
        try:
            for i, todo in self.reshrink:
                self.shrunk(shrink_task(*todo, runtime=self.runtime, pump=self.pump), i)
            for i in self.pending:
                row, text = run_index(self.spec, self.seed, i, self.runtime, self.pump)
                todo = self.took(row, text)
                if todo:
                    self.shrunk(shrink_task(*todo, runtime=self.runtime, pump=self.pump), i)
        except KeyboardInterrupt:
            self.interrupted = True
        self.wall = time.perf_counter() - t0
        self.finish()

    def run_dask(self, workers=None, scheduler=None):
        from distributed import Client, LocalCluster, as_completed
        t0 = time.perf_counter()
        cluster = None
        if scheduler:
            client = Client(scheduler)
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=40)
            client = Client(cluster)
        # every local worker registered before counting them; a remote cluster: at least one
        if not self.quiet and scheduler and not client.scheduler_info().get("workers"):
            print("campaign: waiting for a worker on %s" % scheduler, file=self.progress.stream)
        client.wait_for_workers(1 if scheduler else workers)
        self.workers = len(client.scheduler_info().get("workers", {}))
        if not self.quiet:
            print("campaign: %d runs (%d done before), %d worker(s) on %s" % (
                self.runs, self.resumed, self.workers, scheduler or "a local cluster"), file=self.progress.stream)
        spec_f = client.scatter([self.spec], broadcast=True)[0] if self.pending else None
        futs = {}
        ac = as_completed()
        try:
            for i in self.pending:
                fu = client.submit(run_index, spec_f, self.seed, i, self.runtime, self.pump, pure=False,
                                   key="run-%d-%d-%d" % (self.seed, i, time.time_ns() % 10 ** 9))
                futs[fu.key] = ("run", i)
                ac.add(fu)
            for i, todo in self.reshrink:
                sf = client.submit(shrink_task, *todo, runtime=self.runtime, pump=self.pump, pure=False)
                futs[sf.key] = ("shrink", i)
                ac.add(sf)
            for fu in ac:
                kind, i = futs.pop(fu.key)
                if kind == "run":
                    try:
                        row, text = fu.result()
                    except SpecError:
                        raise
                    except Exception as e:      # the worker died under it (KilledWorker, ...)
                        name, text, facts = generate(self.spec, self.seed, i)
                        row = crash_row(i, name, "%s: %s" % (type(e).__name__, e), facts)
                    todo = self.took(row, text)
                    if todo:
                        sf = client.submit(shrink_task, *todo, runtime=self.runtime, pump=self.pump, pure=False)
                        futs[sf.key] = ("shrink", i)
                        ac.add(sf)
                else:
                    try:
                        self.shrunk(fu.result(), i)
                    except Exception as e:      # the failure stays in runs.csv, unshrunk
                        print("campaign: shrinking run %d failed: %s: %s" % (i, type(e).__name__, e),
                              file=self.progress.stream)
                fu.release()
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            try:
                client.close()
                if cluster is not None:
                    cluster.close()
            except Exception:       # a cluster already gone: the results are on disk
                pass
        self.wall = time.perf_counter() - t0
        self.finish()

    def finish(self):
        self.progress.tick(force=True)
        self.journal.close()
