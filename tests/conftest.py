import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tests", "portable"), os.path.join(ROOT, "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from hypothesis import settings, HealthCheck  # noqa: E402

# ci: sized so the whole suite stays well under 10 minutes on 2 cores.
settings.register_profile("ci", max_examples=200, stateful_step_count=50, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=2000, stateful_step_count=80, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=20, stateful_step_count=25, deadline=None)
# fast: find a failure without spending minutes shrinking it (debugging only)
from hypothesis import Phase  # noqa: E402
settings.register_profile("fast", max_examples=30, stateful_step_count=30, deadline=None,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def sim_profile():
    with open(os.path.join(ROOT, "boards", "sim.json")) as f:
        return json.load(f)
