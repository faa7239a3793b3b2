"""One file per method; importing this package registers every method (see multissl.registry)."""
import sys as _sys

from multissl._discover import import_submodules as _import_submodules

_import_submodules(_sys.modules[__name__])
