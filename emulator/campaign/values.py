# What spec.py checks and generate.py draws from, so that neither imports
# the other's inside: the forms a spec value takes, the faults that `lasts`,
# and the error a bad spec raises.
#
# Every value in a spec is one of
#   a literal            500, "power_on", true       the same in every run
#   a list               [500, 1000, 2000]           one of them, uniformly
#   {min = A, max = B}   whole numbers, decimals, or times ("1d 06:00")
#   {choose = [...], weights = [...]}                one of them, weighted
from emulator.scenario import ScenarioError

# a fault with `lasts`: what ends it, that long after
ENDED_BY = {"block": "release", "kink": "release", "disconnect": "revise_catheter", "leak": "revise_catheter",
            "migrate": "revise_catheter", "jam": "repair_motor"}


class SpecError(ScenarioError):
    """A bad campaign spec: the file, the key and the reason (exit status 2)."""

    def __reduce__(self):           # raised on a Dask worker, it comes back whole
        return (SpecError, (self.path, self.key, self.reason))


def is_range(v):
    return isinstance(v, dict) and set(v) == {"min", "max"}


def is_choice(v):
    return isinstance(v, dict) and "choose" in v and set(v) <= {"choose", "weights"}
