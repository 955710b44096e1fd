"""`chief playground`: serve the playground page, or export its eval diffs as a static site."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from tinker_chief.cli.options import backend_options, project_option

if TYPE_CHECKING:  # imported when run, so `chief --help` stays fast
    from tinker_chief.playground import PlaygroundContext


@click.command(name="playground")
@project_option
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port on 127.0.0.1 (0: a free one).",
)
@click.option("--no-browser", is_flag=True, help="Print the URL but do not open a browser.")
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the eval diffs and saved conversations as a static site into DIRECTORY, then exit "
    "(no server, no backend).",
)
@click.option(
    "--stream-tokens",
    default=16,
    show_default=True,
    type=click.IntRange(min=0),
    help="Tokens per sampling request while an answer streams in; 0: one request per answer "
    "(each chunk re-sends the prompt, which Tinker's cloud bills as prefill).",
)
@backend_options
def playground_command(
    project_dir: Path,
    port: int,
    no_browser: bool,
    export_dir: Path | None,
    stream_tokens: int,
    backend: str | None,
    base_url: str | None,
) -> None:
    """Look at the models in the browser: chat with 2-4 side by side, and read eval diffs.

    Serves a page on 127.0.0.1 (the printed URL carries a random token) that lists the
    registry's versions and the backend's base models. Chat: one prompt to every picked
    model, answers streamed in with each token's probability and top alternatives (hover a
    token), the prompt's per-token NLL, the exact tokens sent, edits that branch the chat,
    and "save as eval row". Eval diff: two versions on one task, sample by sample, filtered
    to where they disagree, under the paired test `chief compare` runs. The backend is
    chosen as for every command (flags, environment, [backend], TINKER_API_KEY, a local
    engine started here). Ctrl-C stops it.

    \b
    Examples:
      chief playground
      chief playground --project myproj --port 8900 --no-browser
      chief playground --export site/      # static diffs, opens from file://
    """
    from tinker_chief.playground import load_context

    context = load_context(project_dir)
    if export_dir is not None:
        from tinker_chief.playground import export_site

        summary = export_site(context, export_dir)
        counts = f"{summary.diffs} diffs, {summary.saved} saved rows"
        click.echo(f"static playground written: {summary.index} ({counts})")
        if summary.left_out:
            click.echo(
                f"left out (older than each task's newest): {', '.join(summary.left_out)}",
                err=True,
            )
        return
    _serve(context, project_dir, port, no_browser, stream_tokens, backend, base_url)


def _serve(
    context: PlaygroundContext,
    project_dir: Path,
    port: int,
    no_browser: bool,
    stream_tokens: int,
    backend: str | None,
    base_url: str | None,
) -> None:
    import webbrowser

    from tinker_chief.playground import PlaygroundServer, PlaygroundState
    from tinker_chief.workspace import connect_at

    choice = context.backend_choice(backend, base_url)
    models = [context.base_model] if context.base_model else []
    if choice.starts_engine:
        click.echo("starting the local engine...", err=True)
    with connect_at(project_dir, choice, models) as connection:
        server = PlaygroundServer(PlaygroundState(context, connection, stream_tokens), port)
        click.echo(f"chief playground for {context.name}: models on {connection.where}")
        click.echo(f"open {server.url}")
        click.echo("(Ctrl-C stops it)", err=True)
        if not no_browser:
            webbrowser.open(server.url)
        server.run()
