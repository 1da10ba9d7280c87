"""Fault campaigns: many generated scenarios run on Dask, judged by the
emulator's own checks, each failure shrunk to a small scenario file.

The campaign only writes scenario files and reads run results: every run is
a normal scenario (`pump-emu run` reproduces it), and the pump is never
reached into. One module per job:

  values.py       the forms of a spec value, the faults that `lasts`, SpecError
  spec.py         read and check a campaign spec (campaigns/*.toml)
  generate.py     (spec, seed, index) -> a scenario TOML text, deterministic
  run.py          run one generated scenario as `pump-emu run` does -> a result row
  shrink.py       reduce a failing scenario, keeping the same failing check
  dask_runner.py  submit the runs to a Dask cluster (or a plain loop), stream, resume
  report.py       DIR/campaign.json, DIR/runs.csv, DIR/index.html
  cli.py          `pump-emu campaign ...`
"""


def main(argv):
    from emulator.campaign.cli import main as _main
    return _main(argv)
