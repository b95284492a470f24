"""What the Commands view says about one command: help, usage, provenance.

Plain functions building ``rich.text.Text``: the catalogue's strings were
sanitized where they entered the console, and they are appended as text,
never parsed as markup.
"""

from __future__ import annotations

from rich.text import Text

from devconsole.commands.catalogue import CORE_APP, Catalogue, CommandInfo


def command_label(command: CommandInfo, width: int = 24) -> Text:
    """One row of the command list: name, then a mark for errors/overrides."""
    text = Text(command.name.ljust(width))
    if command.error:
        text.append(" !", style="bold red")
    elif command.shadows:
        text.append(" ↑", style="bold")
    if command.interactive:
        text.append(" ⌨", style="dim")
    return text


def app_label(app: str, count: int) -> Text:
    text = Text(app, style="bold underline")
    text.append(f"  {count}", style="dim")
    if app == CORE_APP:
        text.append("  (Django's own)", style="dim")
    return text


def command_detail(command: CommandInfo, catalogue: Catalogue | None = None) -> Text:
    """Everything the catalogue knows about ``command``, for the Help tab."""
    text = Text(no_wrap=True, overflow="ignore")
    text.append(command.name, style="bold")
    if command.summary:
        text.append(f"  {command.summary}")
    text.append("\n\n")

    def row(label: str, value: str, style: str = "") -> None:
        text.append(f"{label:<10}", style="dim")
        text.append(value, style=style)
        text.append("\n")

    row("app", command.app + ("  (Django's own commands)" if command.is_core else ""))
    row("class", command.class_path or "-")
    if command.file:
        row("file", command.file)
    if command.shadows:
        row("shadows", ", ".join(command.shadows) + "  (same name, lower in INSTALLED_APPS or core)", "bold")
    if command.interactive:
        row("runs", "in the terminal: it talks to you (the console suspends meanwhile)")
    if command.name == "runserver":
        row("runs", "as the console's own server: Enter shows the dashboard")
    if command.mro:
        text.append("\nMRO\n", style="bold")
        for depth, klass in enumerate(command.mro):
            text.append(f"  {'  ' * depth}{'└ ' if depth else ''}{klass}\n")
    if command.error:
        text.append("\nfailed to load\n", style="bold red")
        text.append(command.error + "\n", style="red")
        if command.traceback:
            text.append("\n" + command.traceback.rstrip() + "\n", style="dim")
        return text
    if command.help_text:
        text.append("\n")
        text.append(command.help_text.rstrip() + "\n")
    elif command.usage:
        text.append("\n" + command.usage + "\n")
    return text


def catalogue_summary(catalogue: Catalogue) -> Text:
    failed = len(catalogue.errors)
    text = Text(f"{len(catalogue)} commands", style="bold")
    text.append(f" · Django {catalogue.django_version}", style="dim")
    if failed:
        text.append(f" · {failed} failed to load", style="bold red")
    return text
