"""`python -m langmodels ...`: the same command as `langmodels ...`.

`python -m` puts the current folder first on sys.path; it is taken off before the command runs,
so a file there named like a module the command imports later (a bench config's `kind`, an
optional dependency) is never imported: a command is not a script of the folder it is run from.
The package itself is already imported, and its own modules are found through it.
"""

import os
import sys

if __name__ == "__main__":
    if sys.path and not sys.flags.safe_path and os.path.abspath(sys.path[0] or ".") == os.getcwd():
        del sys.path[0]

    from .cli import main

    sys.exit(main())
