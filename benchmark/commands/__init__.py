"""Sub-commands of `python -m benchmark`.

Each module here defines `NAME` (the sub-command), `HELP` (one line),
`add_arguments(parser)` and `main(args) -> int`. The CLI discovers them by module name,
so a new command is one new file and nothing else changes.
"""
