"""History: protected folders, their backups (snapshots), versions, retention, leases.

Nothing here imports Qt: the window, `cssm` and a headless schedule run the same code.
"""
