# The words of a check's verdict, for every check of the judge (checks.py,
# check_alarms.py, check_clinic.py): a check that covered nothing says "not
# checked", never "ok": status is "ok", "fail" or "not checked", and `ok` is
# true, false or null (none).
OK, FAIL, NOT_CHECKED = "ok", "fail", "not checked"


def result(ident, name, status, detail, covered, **more):
    """One check's result. covered: what it looked at, in words."""
    r = {"id": ident, "name": name, "status": status,
         "ok": True if status == OK else (False if status == FAIL else None),
         "detail": detail, "covered": covered}
    r.update(more)
    return r
