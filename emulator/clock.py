# The pump's clocks, driven by the emulator's true time.
#
# `now` is true virtual milliseconds since the run began; only the engine moves
# it. The pump sees two clocks through its clock port, as on a board:
# - ticks_ms(): a millisecond counter that wraps every 2**30 ms (as time.ticks_ms
#   does on a board) and runs fast or slow by drift_ppm (its crystal);
# - wall_s(): local wall-clock seconds from the real-time clock, which a clinician
#   can set and which can jump (a glitch) or be left on the old time zone.
TICKS_PERIOD = 1 << 30
TICKS_MASK = TICKS_PERIOD - 1

PARAMS = {
    "drift_ppm": 0,          # crystal error: +50 means the pump's time runs 50 ppm fast
    "ticks_start": 0,        # the tick counter at the start of the run (wrap tests)
}


class ClockModel:
    def __init__(self, wall_start_s, drift_ppm=0, ticks_start=0):
        self.now = 0
        self.drift_ppm = drift_ppm
        self.ticks_start = ticks_start
        self.wall_base = wall_start_s
        self.wall_adjust = 0

    def pump_elapsed_ms(self):
        """Milliseconds as the pump's crystal counts them."""
        return self.now + self.now * self.drift_ppm // 1000000

    # --- the clock port ---------------------------------------------------
    # (read at every wake-up: each computes pump_elapsed_ms() in line)
    def ticks_ms(self):
        now = self.now
        return (self.ticks_start + now + now * self.drift_ppm // 1000000) & TICKS_MASK

    def wall_s(self):
        now = self.now
        return self.wall_base + (now + now * self.drift_ppm // 1000000) // 1000 + self.wall_adjust

    def tod_s(self):
        """Local seconds since midnight: what the pump reads at every wake-up."""
        now = self.now
        return (self.wall_base + (now + now * self.drift_ppm // 1000000) // 1000 + self.wall_adjust) % 86400

    def set_wall(self, s):
        self.wall_adjust = s - (self.wall_base + self.pump_elapsed_ms() // 1000)

    # --- the world ----------------------------------------------------------
    def jump(self, seconds):
        """The real-time clock jumps without anyone setting it (a glitch)."""
        self.wall_adjust += seconds
