"""Hot-path integers stay below 2**30 over a 180-day refill interval.

On RP2040 and ESP32 a small int has 31 bits: 2**30 or more is a heap object,
so a hot path that computes one allocates at every stroke, which the 64-bit
unix port and CPython never show (DESIGN.md, Units). This test runs 180 days
in the emulator with the firmware on its 32-bit code paths (the CRC in 16-bit
halves), traces every line the pump runs on sampled days (the first two, the
days around the tick counter's 2**30 ms wrap, one mid-interval, the last two)
and checks every local variable, return value and stored attribute of the
pump's objects. The CRC halves are also proven equal to binascii's CRC-32.
"""
import binascii
import collections
import os
import sys

from hypothesis import given, strategies as st

from emulator import engine
from emulator.scenario import from_dict
from pump import compat
from pump.controller import Pump

LIMIT = 1 << 30
DAY = 86_400_000
FW = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware", "pump")


class Finder:
    def __init__(self):
        self.found = collections.Counter()
        self.example = {}
        self.lines = 0

    def scan(self, where, name, v, depth=0):
        if isinstance(v, bool):
            return
        if isinstance(v, int):
            if abs(v) >= LIMIT:
                self.found[(where, name)] += 1
                self.example.setdefault((where, name), v)
        elif isinstance(v, (list, tuple, bytearray)) and depth < 3:
            for x in v:
                self.scan(where, name, x, depth + 1)
        elif isinstance(v, dict) and depth < 3:
            for k, x in v.items():
                self.scan(where, "%s[%s]" % (name, k), x, depth + 1)

    def tracer(self, frame, event, arg):
        if not frame.f_code.co_filename.startswith(FW):
            return None

        def local(frame, event, arg):
            self.lines += 1
            where = "%s:%s" % (os.path.basename(frame.f_code.co_filename), frame.f_code.co_name)
            for k, v in frame.f_locals.items():
                self.scan(where, k, v)
            if event == "return":
                self.scan(where, "<return>", arg)
            return local
        return local

    def walk(self, obj, path, seen):
        """Every int the pump keeps in its objects (what it stores)."""
        if id(obj) in seen:
            return
        seen.add(id(obj))
        for k, v in vars(obj).items():
            if k in ("clock", "motor", "pressure", "battery_port", "store", "ann", "sink", "profile"):
                continue          # ports and the board profile: not the pump's own state
            if hasattr(v, "__dict__") and type(v).__module__.startswith("pump"):
                self.walk(v, path + "." + k, seen)
            else:
                self.scan("state", path + "." + k, v)


def test_hot_path_integers_stay_below_2_30_for_180_days(monkeypatch):
    monkeypatch.setattr(compat, "WIDE_INTS", False)      # the 32-bit board's code paths
    f = Finder()
    tracing = {"on": False}

    class Probe(Pump):
        def cycle(self):
            if not tracing["on"]:
                return Pump.cycle(self)
            sys.settrace(f.tracer)
            try:
                return Pump.cycle(self)
            finally:
                sys.settrace(None)
                f.walk(self, "pump", set())

    monkeypatch.setattr(engine, "Pump", Probe)
    sc = from_dict({
        "title": "180 days for the small-int check", "duration": "180d",
        "physics": {"clock": {"ticks_start": (1 << 30) - 11 * DAY}},      # the tick counter wraps on day 11
        "start": {"fill_ml": 20, "concentration_ug_ml": 2000, "program": {
            "mode": "continuous", "concentration_ug_ml": 2000, "daily_dose_ug": 200,
            "max_daily_ug": 260, "max_hourly_ug": 30,
            "patient_bolus": {"dose_ug": 5, "duration_min": 10, "lockout_min": 120, "max_per_day": 4}}},
        "events": [{"at": "1d 10:00", "do": "patient_bolus", "count": 60, "every": "3d"},
                   {"at": "90d 10:00", "do": "refill", "volume_ml": 20, "concentration_ug_ml": 2000}],
    }, "small-ints.toml")
    w = engine.World(sc)
    w.begin()
    for d1, traced in [(2, True), (10, False), (13, True), (100, False), (101, True), (178, False), (180, True)]:
        tracing["on"] = traced
        w.advance_to(d1 * DAY)
    w.finish()
    assert len(w.motor.trace) > 70_000                      # 180 days of strokes, not a stopped pump
    assert f.lines > 500_000                                # the trace saw the hot path
    bad = ["%s %s = %d (%d times)" % (k[0], k[1], f.example[k], n) for k, n in f.found.most_common(20)]
    assert not bad, "values of 2**30 or more on the hot path:\n" + "\n".join(bad)


@given(st.binary(max_size=300))
def test_crc_in_halves_is_crc32(data):
    c = binascii.crc32(data)
    assert compat.crc32_halves(data) == (c >> 16, c & 0xFFFF)
    assert compat.crc32_parts(data) == (c >> 16, c & 0xFFFF)


def test_ten_years_at_the_least_rate_across_2034(monkeypatch):
    """A pump implanted in 2030 at the smallest rate a program may have (one
    stroke an hour) for ten years: across 2034-01-09, where seconds since 2000
    pass 2**30, it doses on to the stroke, stamps its records with the true
    date, and its hot path still keeps every value below 2**30 (the days
    around the crossing and the last day are traced)."""
    monkeypatch.setattr(compat, "WIDE_INTS", False)
    f = Finder()
    tracing = {"on": False}

    class Probe(Pump):
        def cycle(self):
            if not tracing["on"]:
                return Pump.cycle(self)
            sys.settrace(f.tracer)
            try:
                return Pump.cycle(self)
            finally:
                sys.settrace(None)
                f.walk(self, "pump", set())

    monkeypatch.setattr(engine, "Pump", Probe)
    sc = from_dict({
        "title": "ten years at one stroke an hour", "duration": "3650d", "start_time": "2030-01-01T00:00",
        "patient": {"sample_min": 720},
        "physics": {"battery": {"capacity_mah": 3000}},        # a battery that outlasts the ten years
        "start": {"fill_ml": 20, "concentration_ug_ml": 500, "program": {
            "mode": "continuous", "concentration_ug_ml": 500, "daily_dose_ug": 3,
            "max_daily_ug": 5, "max_hourly_ug": 1}},
        "events": [{"at": "3000d 10:00", "do": "refill", "volume_ml": 20, "concentration_ug_ml": 500}],
    }, "ten-years.toml")
    crossing = 12427 - (sc.start_wall_s // 86400)          # 2034-01-09 is day 1469 of the run
    w = engine.World(sc)
    w.begin()
    for d1, traced in [(crossing - 1, False), (crossing + 1, True), (3650, False)]:
        tracing["on"] = traced
        w.advance_to(d1 * DAY)
    w.finish()
    per_day = 24                                           # 3 ug/day at 500 ug/mL: 6000 nL, 24 strokes
    assert abs(len(w.motor.trace) - 3650 * per_day) <= 2
    for year in range(10):
        n = sum(1 for t, *_ in w.motor.trace if year * 365 * DAY <= t < (year + 1) * 365 * DAY)
        assert abs(n - 365 * per_day) <= 2, (year, n)
    wall = w.pump.status()["wall_s"]
    assert wall == sc.start_wall_s + 3650 * 86400 and wall >= 1 << 30
    assert f.lines > 20_000
    bad = ["%s %s = %d (%d times)" % (k[0], k[1], f.example[k], n) for k, n in f.found.most_common(20)]
    assert not bad, "values of 2**30 or more on the hot path:\n" + "\n".join(bad)
