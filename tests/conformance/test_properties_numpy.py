"""The property checks run hypothesis only on a whole numpy, even while another thread (the
oracle loading torch in reference mode) is still importing it."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_whole_numpy_waits_for_an_import_under_way():
    script = textwrap.dedent(
        """
        import sys, threading
        from conformance._checks.properties import _whole_numpy
        importer = threading.Thread(target=__import__, args=("torch",))
        importer.start()
        while "numpy" not in sys.modules:
            pass
        _whole_numpy()
        print(hasattr(sys.modules["numpy"], "ndarray"))
        importer.join()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
