"""Pumps with planted bugs, for proving a campaign finds them
(tests/test_campaign.py). Importable by name ("campaign_bugs:Class") so that
Dask workers in other processes can build them too."""
from pump.controller import Pump


class AlarmsLostAtRestartPump(Pump):
    """A restart brings its stops back but not their alarms: a pump that was
    stopped (occluded, or waiting for a program at a new strength) comes back
    still stopped and silent."""

    def _start(self, cause):
        real = self.alarms.raise_
        self.alarms.raise_ = lambda code: False
        try:
            Pump._start(self, cause)
        finally:
            self.alarms.raise_ = real


class RefillRaisesPump(Pump):
    """A refill at a new strength raises out of the command interface (an
    exception the firmware does not contain)."""

    def refill(self, volume_nl, conc, residual_nl):
        if self.reservoir.conc and conc != self.reservoir.conc:
            raise ZeroDivisionError("planted: division by zero in a refill at a new strength")
        return Pump.refill(self, volume_nl, conc, residual_nl)
