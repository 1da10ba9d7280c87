# Motor supervision: every commanded stroke reports completed or stalled.
#
# A stall is retried a bounded number of times; when the retries are used up
# the pump raises the critical motor-stall alarm and stops. A completed
# stroke resets the count, so an occasional transient stall is tolerated.
COMPLETED = 1
STALLED = 0

RETRY = 1
GIVE_UP = 2


class MotorSupervisor:
    def __init__(self, max_retries):
        self.max_retries = max_retries
        self.stalls = 0
        self.pending = False
        self.pending_kind = 0

    def commanded(self, kind):
        self.pending = True
        self.pending_kind = kind

    def feedback(self, result):
        """-> None (completed), RETRY or GIVE_UP."""
        self.pending = False
        if result == COMPLETED:
            self.stalls = 0
            return None
        self.stalls += 1
        return GIVE_UP if self.stalls > self.max_retries else RETRY

    def reset(self):
        self.stalls = 0
