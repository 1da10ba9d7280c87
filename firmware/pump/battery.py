# Battery supervision from a gauge port that reports charge in permille.
#
# ERI (elective replacement indicator) warns that the pump should be
# replaced; EOS (end of service) stops delivery. EOS is latched: a gauge that
# bounces back up after EOS does not restart a pump at the end of its life.
OK = 0
ERI = 1
EOS = 2


class BatteryMonitor:
    def __init__(self, eri_permille, eos_permille):
        self.eri = eri_permille
        self.eos = eos_permille
        self.state = OK
        self.level = 1000

    def sample(self, level):
        """Feed a reading; return the new state if it changed, else None."""
        self.level = level
        if self.state == EOS:
            return None
        new = EOS if level <= self.eos else (ERI if level <= self.eri else OK)
        if new == ERI and self.state == ERI:
            return None
        if new == OK and self.state == ERI:
            return None  # ERI is latched too: a replacement is due either way
        if new != self.state:
            self.state = new
            return new
        return None
