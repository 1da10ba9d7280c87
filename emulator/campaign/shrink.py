# A failing scenario made small: drop events one at a time, cut the run short
# after its last event, drop the patient and physics tables, make numbers
# round; each step kept only if the run still fails the same check. The
# result is a normal scenario file `pump-emu run` fails the same way.
import os
import tomllib

from emulator.preset import fmt_time
from emulator.timeexpr import parse_time
from emulator.campaign.generate import dumps

HOUR = 3600000
MAX_TRIES = 120


class Shrinker:
    def __init__(self, name, text, check, runner, max_tries=MAX_TRIES):
        """runner(name, text) -> a row (run.run_generated); check: the id that must still fail."""
        self.name, self.check, self.runner = name, check, runner
        self.best = tomllib.loads(text)
        self.tries = 0
        self.max_tries = max_tries
        self.last_row = None

    def fails(self, d):
        if self.tries >= self.max_tries:
            return False
        self.tries += 1
        row = self.runner(self.name, dumps(d))
        if self.check in row.get("failed", []):
            self.last_row = row
            return True
        return False

    def attempt(self, change):
        """Try best with `change` applied (change(copy) -> False to skip); keep it if it still fails."""
        d = tomllib.loads(dumps(self.best))
        if change(d) is False:
            return False
        if self.fails(d):
            self.best = d
            return True
        return False

    # ---------------------------------------------------------------- steps
    def drop_events(self):
        changed = True
        while changed:
            changed = False
            i = 0
            while i < len(self.best.get("events", [])):
                if self.attempt(lambda d, i=i: d["events"].pop(i) and None):
                    changed = True
                else:
                    i += 1

    def _event_times(self, d):
        ts = []
        for ev in d.get("events", []):
            try:
                t = parse_time(ev.get("at", "0d"))
            except (ValueError, TypeError):
                return None          # a time by reference: leave the duration alone
            if "every" in ev:
                t += parse_time(ev["every"]) * (ev.get("count", 1) - 1)
            ts.append(t)
        return ts

    def shorten(self):
        ts = self._event_times(self.best)
        if ts is None:
            return
        last = max(ts, default=0)
        dur = parse_time(self.best["duration"])
        for tail in (HOUR, 6 * HOUR, 12 * HOUR, 24 * HOUR):
            new = (last + tail) // 60000 * 60000
            if new >= dur:
                break

            def cut(d, new=new):
                d["duration"] = fmt_time(new)
            if self.attempt(cut):
                break

    def drop_tables(self):
        for key in ("patient", "physics", "timezone", "start_time"):
            if key in self.best:
                self.attempt(lambda d, key=key: d.pop(key) and None)

    def round_numbers(self):
        for i in range(len(self.best.get("events", []))):
            ev = self.best["events"][i]
            for k, v in list(ev.items()):
                if k in ("count", "nth_write", "at_write", "repeat") and isinstance(v, int) and v > 1:
                    self.attempt(lambda d, i=i, k=k: d["events"][i].__setitem__(k, 1))
                elif k in ("volume_ml",) and v != 20:
                    self.attempt(lambda d, i=i, k=k: d["events"][i].__setitem__(k, 20))
                elif k == "at":
                    try:
                        t = parse_time(v)
                    except (ValueError, TypeError):
                        continue
                    r = t // HOUR * HOUR
                    if r != t:
                        self.attempt(lambda d, i=i, r=r: d["events"][i].__setitem__("at", fmt_time(r)))

    def run(self):
        self.drop_events()
        self.shorten()
        self.drop_tables()
        self.round_numbers()
        self.shorten()
        return self.best


def shrink(name, text, check, runner, max_tries=MAX_TRIES):
    """-> (small scenario text, events left, tries, the failing check's detail)."""
    s = Shrinker(name, text, check, runner, max_tries)
    d = s.run()
    d["name"] = name
    detail = (s.last_row or {}).get("detail", {}).get(check, "")
    return dumps(d), len(d.get("events", [])), s.tries, detail


def shrink_task(name, text, check, runtime="cpython", pump=None, max_tries=MAX_TRIES):
    """The unit of work for a worker: shrink one failure. -> dict."""
    from emulator.campaign.run import run_generated

    def runner(n, t):
        return run_generated(n, t, runtime=runtime, pump=pump)
    small, n_events, tries, detail = shrink(name, text, check, runner, max_tries)
    return {"name": name, "check": check, "text": small, "events": n_events, "tries": tries, "detail": detail}


def write_failure(out_dir, res, run_row):
    """DIR/failures/NAME.toml with the check it fails in its header. -> its path."""
    d = os.path.join(out_dir, "failures")
    os.makedirs(d, exist_ok=True)
    fname = "%s-%s.toml" % (res["name"], res["check"])
    path = os.path.join(d, fname)
    head = ("# Fails check %s (%s)\n# shrunk from run %d of the campaign (%d events left, %d tries)\n"
            "# reproduce: pump-emu run %s --out out/%s\n"
            % (res["check"], res["detail"].replace("\n", " "), run_row["run"], res["events"], res["tries"],
               path, fname[:-5]))
    with open(path, "w") as f:
        f.write(head + res["text"])
    return path
