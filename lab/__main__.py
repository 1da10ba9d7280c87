# python -m lab: what `make lab` runs (lab/builder.py)
import sys

from lab.builder import main

sys.exit(main())
