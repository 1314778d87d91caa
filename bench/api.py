"""`bench/api.py`: runs bench/api_load.py (the API at scale: event list latency and the live
fan-out), whose name cannot be `api` for the type checker, which would take it for the `api`
package. Usage and output: see bench/api_load.py."""

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).with_name("api_load.py")), run_name="__main__")
