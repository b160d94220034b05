"""A click group whose subcommands are imported only when used (fast `estran --help`).

The one lazy group of the project: `estran` (estran/cli.py), `estran bench` and
`estran edge` (edge/cli/__init__.py) use it. It lives in edge because edge may not import
estran, and estran, the composition root, may import edge.
"""

import importlib

import click


class LazyGroup(click.Group):
    """Subcommands given as {"name": "module:attribute"}, imported on first use."""

    def __init__(
        self,
        *args: object,
        lazy: dict[str, str] | None = None,
        extras: dict[str, str] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._lazy = dict(lazy or {})
        self._extras = dict(extras or {})  # command -> the extra that installs what it needs

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, attr = self._lazy[cmd_name].split(":")
            try:
                command = getattr(importlib.import_module(module_name), attr)
            except ModuleNotFoundError as e:
                if e.name is None or e.name.split(".")[0] in {
                    "protocols",
                    "edge",
                    "fleet",
                    "hub",
                    "estran",
                }:
                    raise
                extra = self._extras.get(cmd_name, "dev")
                raise click.ClickException(
                    f"`{cmd_name}` needs {e.name}, which this install lacks: it comes with "
                    f"`pip install 'estran[{extra}]'` (a gateway installs estran[edge] only)"
                ) from e
            if not isinstance(command, click.Command):
                raise TypeError(f"{self._lazy[cmd_name]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)
