"""The command line every gallery example shares: ``--fast`` and ``--out-dir``.

Each example ends with ``gallery_cli(main, __doc__, fast_help)``, imported only
when it runs as a script (its folder is then on ``sys.path``); the tests import
the examples as modules and call ``main`` themselves.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable


def gallery_cli(main: Callable[..., Any], doc: str, fast_help: str) -> None:
    """Parses ``--fast`` / ``--out-dir`` (default examples/output) and runs ``main``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help=fast_help)
    parser.add_argument("--out-dir", default="examples/output", help="where the PNG figures go")
    args = parser.parse_args()
    main(fast=args.fast, out_dir=args.out_dir)
