# Drug reservoir accounting: what the pump believes is left.
#
# Remaining volume is the fill minus the strokes counted since that fill; a
# stroke is counted before it is commanded (write-ahead), so after a reset
# the pump can only believe it has less drug than it has, never more (I5).
REFILL_OK = 0
REFILL_DISCREPANCY = 1


class Reservoir:
    def __init__(self, capacity_nl, stroke_nl, empty_nl, accuracy_pct, min_tolerance_nl):
        self.capacity_nl = capacity_nl
        self.stroke_nl = stroke_nl
        self.empty_nl = empty_nl          # below this plus one stroke, no stroke is commanded
        self.accuracy_pct = accuracy_pct  # stated pump accuracy for refill reconciliation
        self.min_tolerance_nl = min_tolerance_nl
        self.fill_nl = 0
        self.conc = 0                     # ug/mL of the drug in the reservoir; 0: never filled
        self.strokes = 0                  # strokes counted since the fill

    def remaining_nl(self):
        r = self.fill_nl - self.strokes * self.stroke_nl
        return r if r > 0 else 0

    def delivered_nl(self):
        return self.strokes * self.stroke_nl

    def can_stroke(self):
        return self.remaining_nl() - self.stroke_nl >= self.empty_nl

    def days_left(self, daily_nl):
        if daily_nl <= 0:
            return None
        left = self.remaining_nl() - self.empty_nl
        return left // daily_nl if left > 0 else 0

    def reconcile(self, residual_nl):
        """Compare the volume withdrawn at refill with what the pump expected.
        Returns (status, expected_nl, tolerance_nl)."""
        expected = self.remaining_nl()
        tol = self.delivered_nl() * self.accuracy_pct // 100
        if tol < self.min_tolerance_nl:
            tol = self.min_tolerance_nl
        diff = residual_nl - expected
        if diff < 0:
            diff = -diff
        return (REFILL_DISCREPANCY if diff > tol else REFILL_OK), expected, tol

    def refill(self, volume_nl, conc):
        """The reservoir was emptied and refilled with volume_nl of conc ug/mL."""
        self.fill_nl = volume_nl
        self.conc = conc
        self.strokes = 0
