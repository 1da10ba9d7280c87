# What the pump's sensors told it that must raise an alarm, recorded on the
# world's side of the ports (for the judge's I7): the pressure readings that
# make an occlusion or a leak by the profile's own rule (so many readings in a
# row past its threshold), and the first battery readings at or below the
# elective-replacement and end-of-service levels. Only readings the pump
# itself took count: it had what it needed to raise the alarm.


class SensorLog:
    def __init__(self, w):
        prof = w.profile
        clock = w.clock
        self.occlusion_due = []     # t_ms of each n-th high reading in a row
        self.leak_due = []          # t_ms of each n-th leak reading in a row
        self.battery_due = {}       # "battery_eri"/"battery_eos" -> t_ms of the first reading at or below
        high, low = prof.get("occlusion_high", 300), prof.get("leak_low", 2)
        n_high, n_low = prof.get("occlusion_samples", 3), prof.get("leak_samples", 5)
        eri, eos = prof.get("battery_eri_permille", 150), prof.get("battery_eos_permille", 30)
        runs = self._runs = [0, 0]
        read = w.catheter.read
        level = w.battery.level
        due = self.battery_due

        def pressure():
            p = read()
            runs[0] = runs[0] + 1 if p >= high else 0
            runs[1] = runs[1] + 1 if p <= low else 0
            if runs[0] == n_high:
                self.occlusion_due.append(clock.now)
            if runs[1] == n_low:
                self.leak_due.append(clock.now)
            return p

        def battery():
            lv = level()
            if lv <= eri and "battery_eri" not in due:
                due["battery_eri"] = clock.now
            if lv <= eos and "battery_eos" not in due:
                due["battery_eos"] = clock.now
            return lv
        # the ports the pump (or its SITL process) is given: the models behind
        # them, read through these (the emulator's own samples read the models)
        self.pressure = _Port(read=pressure)
        self.battery = _Port(level=battery)


    def restart(self):
        """A restarted pump counts its readings in a row from none."""
        self._runs[0] = self._runs[1] = 0


class _Port:
    def __init__(self, **methods):
        for name, fn in methods.items():
            setattr(self, name, fn)
