# The pump's battery: a charge that drains with time and with work, read by
# the firmware through a gauge port in permille.
#
# Defaults are chosen so a pump at the sim profile's usual 1 mL/day reaches ERI
# after about four and a half years and is empty after about five, in the range real implanted pumps quote (battery life ends the
# pump's life). Ageing drains a share of capacity per year; a sudden drop models a cell
# fault.
PARAMS = {
    "capacity_mah": 1500,        # usable charge when new
    "start_permille": 1000,      # charge at the start of the run
    "quiescent_ua": 15,          # always-on drain (clock, supervision)
    "stroke_uas": 300,           # charge per motor stroke (stalled or not)
    "telemetry_uas": 50000,      # charge per programmer session (clinic command)
    "ageing_pct_per_year": 2,    # capacity lost per year of service
}
_UAS_PER_MAH = 3600000
_MS_PER_YEAR = 365 * 86400000


class BatteryModel:
    def __init__(self, clock, capacity_mah=1500, start_permille=1000, quiescent_ua=15,
                 stroke_uas=300, telemetry_uas=50000, ageing_pct_per_year=2):
        self.clock = clock
        self.capacity_uas = capacity_mah * _UAS_PER_MAH
        self.charge_uas = self.capacity_uas * start_permille // 1000
        self.quiescent_ua = quiescent_ua
        self.stroke_uas = stroke_uas
        self.telemetry_uas = telemetry_uas
        self.ageing = ageing_pct_per_year
        self._t = 0

    def _settle(self):
        dt = self.clock.now - self._t
        if dt > 0:
            # ageing: the cell loses a share of its capacity per year, as a drain
            self.charge_uas -= (self.quiescent_ua * dt // 1000
                                + self.capacity_uas * self.ageing * dt // (100 * _MS_PER_YEAR))
            self._t = self.clock.now
        if self.charge_uas < 0:
            self.charge_uas = 0

    # --- the gauge port -----------------------------------------------------
    def level(self):
        self._settle()
        return self.charge_uas * 1000 // self.capacity_uas

    # --- costs and faults ---------------------------------------------------
    def stroke(self):
        self.charge_uas -= self.stroke_uas

    def telemetry(self):
        self.charge_uas -= self.telemetry_uas

    def drop_to(self, permille):
        """A cell fault: the charge falls at once to this level."""
        self._settle()
        self.charge_uas = min(self.charge_uas, self.capacity_uas * permille // 1000)
