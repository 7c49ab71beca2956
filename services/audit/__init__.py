"""What auditors ask of the log: replay it, the state as of a moment, and verification.

Used by the query API (``/v1/audit``) and the CLI (``ledger replay``, ``ledger verify``) alike.
"""
