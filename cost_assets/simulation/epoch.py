"""The simulated workspace's calendar: when it was created. Its own module so that the world
(``world.py``) and its planted anomalies (``planted.py``, whose cycle counts from it) share one date."""

import datetime as dt

# When the workspace and its long-lived objects were created (nothing happens before); a Tuesday.
ANCHOR = dt.date(2025, 7, 1)
