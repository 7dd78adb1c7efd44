"""`scripts/bench`: workflow against the Python Redis queue libraries (issue 7).

One module per library (`p_<name>.py`) holds both sides of it: the harness side (an
`Adapter` that deposits works and names the worker command) and the worker side (the
no-op task, registered the library's way). Adding a library = adding one such module and
its name to `harness.ADAPTERS`.
"""
