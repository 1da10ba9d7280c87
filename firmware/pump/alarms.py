# Alarms: codes, priorities, annunciation, silence and test.
#
# Critical alarms sound the three-second two-tone pattern, non-critical ones
# the one-second single tone (as on the SynchroMed family, per the reference).
# An active alarm sounds at once, then again every repeat interval until it
# clears. Silence mutes the alarms active now for a time-out; one still
# active when that runs out sounds again, and a new alarm always sounds.
from pump.compat import const

LOW_RESERVOIR = const(1)
RESERVOIR_EMPTY = const(2)
OCCLUSION = const(3)
MOTOR_STALL = const(4)
BATTERY_ERI = const(5)
BATTERY_EOS = const(6)
STORAGE_CORRUPT = const(7)
WATCHDOG_RESET = const(8)
CATHETER_LEAK = const(9)
REFILL_DISCREPANCY = const(10)
DOSE_LIMIT = const(11)
PROGRAM_REQUIRED = const(12)
INTERNAL_FAULT = const(13)
FREQUENT_RESETS = const(14)
N_ALARMS = const(15)

NAMES = ("", "low_reservoir", "reservoir_empty", "occlusion", "motor_stall", "battery_eri",
         "battery_eos", "storage_corrupt", "watchdog_reset", "catheter_leak",
         "refill_discrepancy", "dose_limit", "program_required", "internal_fault",
         "frequent_resets")
CRITICAL = (False, False, True, True, True, False, True, True, False, False,
            False, False, True, True, False)
# Alarms that stay until a clinician acknowledges them, even once the cause is
# gone (then they are "resolved": still shown, sounded as non-critical), and
# that survive resets: whatever stopped delivery or made it short must be seen.
LATCHED = (False, False, False, True, True, False, False, True, True, False,
           True, True, True, True, True)

TWO_TONE = const(2)      # 3 s two-tone: critical
SINGLE_TONE = const(1)   # 1 s single tone: non-critical

REPEAT_CRITICAL_MS = const(600000)       # every 10 min
REPEAT_NONCRITICAL_MS = const(3600000)   # every hour
SILENCE_CRITICAL_MS = const(3600000)     # silence holds 1 h for a critical alarm
SILENCE_NONCRITICAL_MS = const(86400000)  # and 24 h for a non-critical one


def name(code):
    return NAMES[code] if 0 < code < N_ALARMS else "alarm_%d" % code


class Alarms:
    def __init__(self, annunciator):
        self.ann = annunciator
        self.active = [False] * N_ALARMS
        self.countdown = [0] * N_ALARMS   # ms until this alarm sounds again
        self.silenced = [0] * N_ALARMS    # ms of silence left
        self.resolved = [False] * N_ALARMS  # latched, cause gone, waiting for an acknowledgement

    def raise_(self, code):
        """-> True if the alarm was not already active (or its cause had gone and
        is back)."""
        if self.active[code] and not self.resolved[code]:
            return False
        self.active[code] = True
        self.resolved[code] = False
        self.countdown[code] = 0          # sound at the next annunciation
        self.silenced[code] = 0
        return True

    def resolve(self, code):
        """The cause of a latched alarm is gone: it stays until acknowledged, at
        the non-critical tone. -> True if that changed anything."""
        if not self.active[code] or self.resolved[code] or not LATCHED[code]:
            return False
        self.resolved[code] = True
        return True

    def clear(self, code):
        """-> True if it was active."""
        if not self.active[code]:
            return False
        self.active[code] = False
        self.resolved[code] = False
        return True

    def any_critical(self):
        for c in range(1, N_ALARMS):
            if self.active[c] and CRITICAL[c] and not self.resolved[c]:
                return True
        return False

    def codes(self):
        return [c for c in range(1, N_ALARMS) if self.active[c]]

    def silence(self):
        n = 0
        for c in range(1, N_ALARMS):
            if self.active[c]:
                self.silenced[c] = SILENCE_CRITICAL_MS if CRITICAL[c] else SILENCE_NONCRITICAL_MS
                n += 1
        return n

    def annunciate(self, dt, sound=True):
        """Let dt ms pass; sound what is due (unless sound is False: the time is
        spent on the countdowns only). -> ms until the next sound (or None)."""
        if True not in self.active:
            return None       # the usual wake-up: nothing to count down or sound
        pattern = 0
        nxt = None
        for c in range(1, N_ALARMS):
            if not self.active[c]:
                continue
            if self.silenced[c] > 0:
                self.silenced[c] -= dt
                if self.silenced[c] > 0:
                    if nxt is None or self.silenced[c] < nxt:
                        nxt = self.silenced[c]
                    continue
                self.silenced[c] = 0
                self.countdown[c] = 0
            else:
                self.countdown[c] -= dt
            if self.countdown[c] <= 0:
                crit = CRITICAL[c] and not self.resolved[c]
                if crit:
                    pattern = TWO_TONE
                elif pattern == 0:
                    pattern = SINGLE_TONE
                self.countdown[c] = REPEAT_CRITICAL_MS if crit else REPEAT_NONCRITICAL_MS
            if nxt is None or self.countdown[c] < nxt:
                nxt = self.countdown[c]
        if pattern and sound:
            self.ann.sound(pattern)
        return nxt

    def test(self):
        """Alarm test: both patterns, whatever is active."""
        self.ann.sound(TWO_TONE)
        self.ann.sound(SINGLE_TONE)
