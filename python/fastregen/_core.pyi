"""Type stubs for the compiled core (private; use the fastregen.* API)."""

import numpy as np
import numpy.typing as npt

__version__: str

def have_openmp() -> bool: ...
def max_threads() -> int: ...

# ----- textio (data layer) -----
# ----- end textio -----

# ----- mining -----
# ----- end mining -----

# ----- entropy -----
# ----- end entropy -----
