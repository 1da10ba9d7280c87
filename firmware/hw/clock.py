# The clock port on a board: the wrapping tick counter as it is (the core's
# monotime keeps time across its 2**30 ms wrap) and the wall clock from the
# real-time clock, in seconds since 2000-01-01 (the pump's epoch).
import time

# time.time() counts from 1970 on some ports (unix, newer rp2/esp32) and from
# 2000 on others: measured once, not assumed.
_EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 1970 else 0


class BoardClock:
    def __init__(self, rtc=None):
        self.rtc = rtc        # machine.RTC(), to set the wall clock

    def ticks_ms(self):
        return time.ticks_ms()

    def wall_s(self):
        return int(time.time()) - _EPOCH_OFFSET    # a float on the unix port

    def set_wall(self, s):
        if self.rtc is None:
            return
        t = time.gmtime(s + _EPOCH_OFFSET)
        # RTC.datetime: (year, month, day, weekday, hours, minutes, seconds, subseconds)
        self.rtc.datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))
