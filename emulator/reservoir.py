# The drug as it really is: the volume and strength in the reservoir, which the
# pump only believes from its own counting. They part under accuracy error, a
# leak, a wrong-concentration refill or a pocket fill (the drug goes under the
# skin, not into the reservoir).


class ReservoirModel:
    def __init__(self, capacity_nl, volume_nl=0, conc_ug_ml=0):
        self.capacity_nl = capacity_nl
        self.volume_nl = volume_nl
        self.conc = conc_ug_ml
        self.filled_nl = volume_nl      # all drug ever put in (conservation check)
        self.withdrawn_nl = 0           # all drug ever taken out with a needle

    def draw(self, nl):
        """The motor moves nl; -> the nL that actually left (less if it ran dry)."""
        out = nl if nl <= self.volume_nl else self.volume_nl
        self.volume_nl -= out
        return out

    def empty_out(self):
        """A refill starts by withdrawing what is left. -> the residual nL."""
        left = self.volume_nl
        self.withdrawn_nl += left
        self.volume_nl = 0
        return left

    def fill(self, nl, conc_ug_ml):
        room = self.capacity_nl - self.volume_nl
        put = nl if nl <= room else room
        self.volume_nl += put
        self.filled_nl += put
        self.conc = conc_ug_ml
        return put
