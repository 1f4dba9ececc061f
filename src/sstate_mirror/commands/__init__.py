"""The commands, each a pure *plan* (listings, options, now -> actions) and an *execute* step.

Plans are ordinary values: printed by ``--dry-run``, serialised by ``--json``, and tested
without any storage. Commands talk to storage only through :class:`~sstate_mirror.backends.
base.Backend`; they never import a storage library.
"""
