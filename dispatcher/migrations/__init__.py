"""The ledger's Alembic migration environment: ``env.py``, the revision template and ``versions/``.

Run through :mod:`dispatcher.migrate`, which passes the connection in; there is no ``alembic.ini``.
"""
