# The clock port on a board: the wrapping tick counter as it is (the core's
# monotime keeps time across its 2**30 ms wrap) and the wall clock, in seconds
# since 2000-01-01 (the pump's epoch), 2000 to 2099.
#
# The wall clock is read from the real-time clock once, at start (and kept in
# it when set), then carried forward from the tick counter as (day, ms in the
# day): past 2034 the seconds since 2000 pass 2**30, a heap object on a 32-bit
# board, and time.localtime() makes a tuple; the pump reads the time of day at
# every wake-up, so that read must allocate nothing (tod_s).
import time

# time.time() counts from 1970 on some ports (unix, newer rp2/esp32) and from
# 2000 on others: measured once, not assumed.
_EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 1970 else 0
_DAY_MS = 86400000


class BoardClock:
    def __init__(self, rtc=None):
        self.rtc = rtc        # machine.RTC(), to keep the wall clock across a soft reset
        self._place(int(time.time()) - _EPOCH_OFFSET)   # a float on the unix port

    def _place(self, s):
        self._day = s // 86400
        self._ms = (s % 86400) * 1000
        self._ticks = time.ticks_ms()

    def _advance(self):
        now = time.ticks_ms()
        d = time.ticks_diff(now, self._ticks)
        if d > 0:
            self._ticks = now
            ms = self._ms + d
            while ms >= _DAY_MS:
                ms -= _DAY_MS
                self._day += 1
            self._ms = ms

    def ticks_ms(self):
        return time.ticks_ms()

    def tod_s(self):
        self._advance()
        return self._ms // 1000

    def wall_s(self):
        self._advance()
        return self._day * 86400 + self._ms // 1000

    def set_wall(self, s):
        self._place(s)
        if self.rtc is None:
            return
        t = time.gmtime(s + _EPOCH_OFFSET)
        # RTC.datetime: (year, month, day, weekday, hours, minutes, seconds, subseconds)
        self.rtc.datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))
