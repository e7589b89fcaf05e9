"""The `pricecast` console command (placeholder until the CLI lands)."""

import typer

app = typer.Typer(help="pricecast: forecasting pipeline for daily market prices.")


@app.command()
def models() -> None:
    """List the registered models."""
    from models import REGISTRY

    for name, spec in REGISTRY.items():
        typer.echo(f"{name:16s} {spec.summary}")
