"""``flask --app wsgi diagrams``: the lifecycles as Mermaid, generated from the machines."""

from __future__ import annotations

import click

from workflows.machines import diagram


@click.command("diagrams")
@click.option(
    "--lifecycle",
    type=click.Choice(["case", "referral", "all"]),
    default="all",
    show_default=True,
)
@click.option("--markdown", is_flag=True, help="Wrap each diagram in a ```mermaid block.")
def diagrams_command(lifecycle: str, markdown: bool) -> None:
    """Print the state diagrams (Mermaid) of the case and referral machines."""
    names = ["case", "referral"] if lifecycle == "all" else [lifecycle]
    for name in names:
        source = diagram(name)
        click.echo(f"```mermaid\n{source}\n```\n" if markdown else source)
