"""The Unpuzzle suite on one machine: ``python -m devstack up`` (what ``make up`` runs).

See :mod:`devstack.cli` for the commands and options, :mod:`devstack.registry` for
the services it knows.
"""
