"""``python -m sstate_mirror`` runs the command line."""

from .cli import main

raise SystemExit(main())
