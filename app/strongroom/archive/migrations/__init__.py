"""The archive's shipped migrations, grouped by what they are for.

archive/schema.py lists them in order (MIGRATIONS); each module here only holds
their text. A shipped migration's text never changes: a new one is appended to
that list (its SQL inline there, or in the module of its group).
"""
