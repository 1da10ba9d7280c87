# bisect_left and bisect_right: the standard ones where there is a bisect
# module, these where there is none (MicroPython: the lab page runs the checks).
try:
    from bisect import bisect_left, bisect_right
except ImportError:
    def bisect_left(a, x):
        lo, hi = 0, len(a)
        while lo < hi:
            mid = (lo + hi) // 2
            if a[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def bisect_right(a, x):
        lo, hi = 0, len(a)
        while lo < hi:
            mid = (lo + hi) // 2
            if x < a[mid]:
                hi = mid
            else:
                lo = mid + 1
        return lo
