"""`python -m shopctl.sandbox --port 12111 …`: the same as `shopctl sandbox`."""

import typer

from shopctl.commands.sandbox import sandbox

if __name__ == "__main__":
    typer.run(sandbox)
