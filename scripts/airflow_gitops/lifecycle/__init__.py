"""The lifecycle of environments: new-env, promote, upgrade and remove-env.

Each command works out the inventory it wants (target files edited with their comments and layout
kept), compiles that inventory in a scratch copy of the repository, validates the result there, and
only then writes the inventory, compiled/ and the refs into the repository: bad input, a failed
compile or a failed check change nothing. `--dry-run` stops before the write and shows the same
file changes and `diff` a real run would make.
"""
