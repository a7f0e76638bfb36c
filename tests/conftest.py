from __future__ import annotations

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# A run started in the background (`make test &` in a script) inherits SIGINT ignored, and
# Python then leaves it ignored: the tests that send Ctrl-C need it delivered as Python's
# own default delivers it (their subprocesses inherit the default again across exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
