"""Inputs of a lifecycle job: the MP1/MP3/MP4/MP5 tables plus the environment (first day and horizon).

Tables are columnar: a ``dict`` of column name to a one-dimensional numpy array, all of one length.
Representation, shared by every loader and every backend:

- integers: ``int64`` arrays; a missing value in a nullable column (MP3 ``ll``/``oh``/``br`` overrides) is ``-1``;
- dates: ``datetime64[D]`` arrays; a missing date (MP3 ``delivery_date`` unless status 0) is ``NaT``;
- ``ac_type``: a numpy unicode array of ``"mi8"`` / ``"mi17"``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Table = dict[str, npt.NDArray[np.generic]]


@dataclass(frozen=True)
class LifecycleInputs:
    """Validated inputs of one lifecycle job.

    Attributes:
        version_date: D0, the first simulated day.
        days: the horizon in days (day indices 0 .. days-1).
        mp1: normatives per (partno, ac_type).
        mp3: initial state per airframe.
        mp4: daily plan in long form (date, ac_type, ops_target).
        mp5: daily flight in long form (date, aircraft_number, daily_minutes).
    """

    version_date: dt.date
    days: int
    mp1: Table
    mp3: Table
    mp4: Table
    mp5: Table
