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
