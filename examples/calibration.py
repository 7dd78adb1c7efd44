"""User code for the demo: an ordinary function following the pipeline interface.

`workflow run calibrate examples.calibration.calibrate` calls it with each work's
parameters as keyword arguments and stores what it returns as the work's results.
"""

from __future__ import annotations

import time


def calibrate(beam: int, seconds: float = 0.05) -> dict:
    """Pretend to calibrate one beam. Beams above 255 do not exist: that is an error."""
    time.sleep(seconds)
    if beam > 255:
        raise ValueError(f"beam {beam} does not exist (0-255)")
    return {"beam": beam, "gain": round(1 + beam / 100, 3)}
